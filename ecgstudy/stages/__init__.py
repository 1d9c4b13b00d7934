"""One module (or package) per DVC stage, in pipeline order; each exposes ``run(cfg, root=None)``.

curate -> pretrain -> finetune -> transfer -> evaluate -> report, with latent and saliency beside them
(dvc.yaml). ``run`` takes the stage's typed config (``ecgstudy.config.stage_config``) and writes every
output dvc.yaml lists for the stage; the notebook in notebooks/ narrates, calls it and displays.

Shared by all stages: :mod:`~ecgstudy.stages.outputs` (where a stage writes), :mod:`~ecgstudy.stages.artifacts`
(files one stage writes and a later one reads), :mod:`~ecgstudy.stages.common` (the opening of a
model-reading stage). A stage never imports another stage's module. See docs/architecture.md.
"""
