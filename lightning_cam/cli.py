"""The ``lightning-cam`` command line: ``LightningCLI`` over any model and datamodule, with CAM configs.

``python train.py fit --config configs/shapes.yaml`` and ``lightning-cam fit --config configs/shapes.yaml``
are the same. The bundled configs are installed with the package and reachable by name from anywhere:
``lightning-cam fit --config shapes`` (`bundled_configs` lists them). Subcommands: ``fit``, ``validate``,
``test``, ``predict``; ``--print_config`` prints the resolved configuration.

A configuration that a lightning_cam class refuses when it is instantiated (an unknown method, metric or view
name, a value out of range) stops with one line, ``<prog>: error: <the class's message>``, and exit status 2,
like a parse error, instead of the tracebacks of every type LightningCLI tried.

``--model`` and ``--data`` take a ``class_path`` (subclass mode), defaulting to
[`GAPClassifier`][lightning_cam.models.GAPClassifier] on [`ShapesDataModule`][lightning_cam.data.ShapesDataModule].

The datamodule's ``num_classes``, ``in_channels``, ``class_names``, ``mean``, ``std`` and ``task`` are passed to
the model when both are instantiated (``link_arguments(..., apply_on="instantiate")``), so configs
never repeat them; a model whose constructor lacks some of those arguments simply does not get
them (the bundled [`ImageClassifier`][lightning_cam.models.ImageClassifier] subclasses take all six). Pass
``link=False`` to `CAMLightningCLI` to drop the links altogether.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import ArgsType, LightningArgumentParser, LightningCLI

__all__ = ["LINKED_ATTRIBUTES", "CAMLightningCLI", "bundled_configs", "main", "resolve_config_args"]

_PACKAGE_DIR = Path(__file__).resolve().parent

#: Datamodule attributes given to the model's constructor argument of the same name.
LINKED_ATTRIBUTES: tuple[str, ...] = ("num_classes", "in_channels", "class_names", "mean", "std", "task")


def bundled_configs() -> dict[str, Path]:
    """The configs installed with the package, by name (``shapes`` -> ``.../lightning_cam/configs/shapes.yaml``).

    Examples:
        >>> "shapes" in bundled_configs()
        True
    """
    folder = Path(str(resources.files("lightning_cam") / "configs"))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_config_args(args: Sequence[str]) -> list[str]:
    """``args`` with every ``--config NAME`` (or ``--config=NAME``) that names no file but a bundled config
    (``shapes``, ``shapes.yaml`` or ``configs/shapes.yaml``) replaced by that config's path.

    Examples:
        >>> resolve_config_args(["fit", "--config", "shapes"])[2].endswith("shapes.yaml")
        True
        >>> resolve_config_args(["fit", "--config=my.yaml"])
        ['fit', '--config=my.yaml']
    """
    bundled = bundled_configs()

    def resolve(value: str) -> str:
        if Path(value).is_file():
            return value
        name = Path(value).name
        stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
        return str(bundled[stem]) if stem in bundled and value in (stem, name, f"configs/{name}") else value

    out: list[str] = []
    for i, arg in enumerate(args):
        if i > 0 and args[i - 1] == "--config":
            out.append(resolve(arg))
        elif arg.startswith("--config="):
            out.append("--config=" + resolve(arg[len("--config="):]))
        else:
            out.append(arg)
    return out


def _ours(err: BaseException) -> BaseException | None:
    """The exception raised in lightning_cam's own code that ``err`` wraps (its cause or context, however deep),
    ``None`` if there is none."""
    seen: set[int] = set()
    found: BaseException | None = None
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb: TracebackType | None = current.__traceback__
        last = None
        while tb is not None:
            last, tb = tb.tb_frame.f_code.co_filename, tb.tb_next
        if last is not None and Path(last).resolve().is_relative_to(_PACKAGE_DIR) and \
                isinstance(current, (ValueError, TypeError)):
            found = current
        current = current.__cause__ or current.__context__
    return found


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

    def instantiate_classes(self) -> None:
        """LightningCLI's instantiation; a lightning_cam class that refuses its arguments stops the command with
        its own message in one line (exit status 2), as a parse error does."""
        try:
            super().instantiate_classes()
        except Exception as err:
            ours = _ours(err)
            if ours is None:
                raise
            prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "lightning-cam"
            print(f"{prog}: error: {ours}", file=sys.stderr)
            raise SystemExit(2) from None

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
    if args is None:  # the command line itself (LightningCLI warns when given both it and args)
        sys.argv[1:] = resolve_config_args(sys.argv[1:])
    elif isinstance(args, Sequence) and not isinstance(args, str):
        args = resolve_config_args([str(a) for a in args])
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
