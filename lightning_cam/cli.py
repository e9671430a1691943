"""The ``lightning-cam`` command line: ``LightningCLI`` over any model and datamodule, with CAM configs.

``python train.py fit --config configs/shapes.yaml`` and ``lightning-cam fit --config configs/shapes.yaml``
are the same. Subcommands: ``fit``, ``validate``, ``test``, ``predict``; ``--print_config`` prints the
resolved configuration. ``--model`` and ``--data`` take a ``class_path`` (subclass mode), defaulting to
[`GAPClassifier`][lightning_cam.models.GAPClassifier] on [`ShapesDataModule`][lightning_cam.data.ShapesDataModule].

The datamodule's ``num_classes``, ``in_channels``, ``class_names``, ``mean``, ``std`` and ``task`` are passed to
the model when both are instantiated (``link_arguments(..., apply_on="instantiate")``), so configs
never repeat them; a model whose constructor lacks some of those arguments simply does not get
them (the bundled [`ImageClassifier`][lightning_cam.models.ImageClassifier] subclasses take all six). Pass
``link=False`` to `CAMLightningCLI` to drop the links altogether.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import ArgsType, LightningArgumentParser, LightningCLI

__all__ = ["LINKED_ATTRIBUTES", "CAMLightningCLI", "main"]

#: Datamodule attributes given to the model's constructor argument of the same name.
LINKED_ATTRIBUTES: tuple[str, ...] = ("num_classes", "in_channels", "class_names", "mean", "std", "task")


def _plain(value: Any) -> Any:
    """Tuples and other sequences (not strings) -> lists; everything else unchanged."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return value


class CAMLightningCLI(LightningCLI):
    """``LightningCLI`` that links datamodule attributes into the model and defaults to the Shapes job.

    Args:
        link: link `LINKED_ATTRIBUTES` from ``data`` to ``model`` (default ``True``).
        *args, **kwargs: forwarded to ``LightningCLI``.
    """

    def __init__(self, *args: Any, link: bool = True, **kwargs: Any) -> None:
        self.link = link
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults(
            {
                "model": {"class_path": "lightning_cam.models.GAPClassifier"},
                "data": {"class_path": "lightning_cam.data.ShapesDataModule"},
            }
        )
        if self.link:
            for name in LINKED_ATTRIBUTES:
                # Sequences go over as plain lists: LightningCLI records the linked value as the model's
                # hparam, and Lightning refuses to merge a model and datamodule hparam that differ in type.
                parser.link_arguments(
                    f"data.{name}", f"model.init_args.{name}", compute_fn=_plain, apply_on="instantiate"
                )


def main(args: ArgsType = None, run: bool = True) -> CAMLightningCLI:
    """Entry point of ``lightning-cam`` and ``train.py``.

    Args:
        args: command-line arguments (default ``sys.argv[1:]``), a list of strings or a dict.
        run: run the subcommand (``False`` only instantiates model, datamodule and trainer).

    Returns:
        The CLI object (``cli.model``, ``cli.datamodule``, ``cli.trainer``).

    Examples:
        >>> cli = main(["--data.num_train=8", "--data.num_val=8", "--trainer.logger=false",
        ...             "--trainer.enable_checkpointing=false"], run=False)  # doctest: +SKIP
        >>> cli.model.fc.out_features  # doctest: +SKIP
        5
    """
    return CAMLightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


def run() -> None:
    """The ``lightning-cam`` console script: `main` on ``sys.argv``, exit status 0 on success (a console
    script exits with what its function returns, and `main` returns the CLI object)."""
    main()


if __name__ == "__main__":  # pragma: no cover
    run()
