"""What a user writes: the sweep spec, the study spec and the schedules L(f)."""
