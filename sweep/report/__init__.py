"""What people read: the sweep's and the study's documents and figures."""
