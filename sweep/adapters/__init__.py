"""Plug an exported schedule into the trainers people use: Hugging Face ``Trainer``
(``hf_trainer``) and DeepSpeed's data-efficiency curriculum (``ds_curriculum``), both on
the step plan of ``sweep.plan_file``. For other trainers (torchtitan, Megatron-DeepSpeed)
the contract is the plan file itself: before optimizer step k, train ``plan[k].rows`` rows
of ``plan[k].length`` tokens (docs/export.md)."""
