"""W&B workspace definitions for context-length sweeps (wandb-workspaces)."""
