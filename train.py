"""Train a classifier and watch its class activation maps: ``python train.py fit --config configs/shapes.yaml``.

Same as the ``lightning-cam`` command; see ``lightning_cam/cli.py`` and ``configs/``.
"""

from lightning_cam.cli import main

if __name__ == "__main__":
    main()
