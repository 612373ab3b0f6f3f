"""The ``privis`` command: thin wrappers over the Python API (``docs/architecture.md``, "The command line").

Every command is argument parsing, the output-path checks, one call into the Python API and printing.

Exit status, one rule for every command and every error type (:data:`EXIT_RULE`):

- 0: success (also when the reader of stdout closed the pipe early);
- 2: bad input, nothing to blame but what was given: a usage error, a bad option or parameter, an unknown
  name, an unusable path (:class:`~privis.errors.InvalidInputError`), a bad dataset spec or source
  (:class:`~privis.errors.DatasetError`), a bad image file (:class:`~privis.errors.ImageFileError`);
- 1: the work failed on good input: training diverged (``FloatingPointError``), the operating system
  (``OSError``, ``MemoryError``: disk full, permission, a port in use) or another
  :class:`~privis.errors.PrivisError`;
- 130: interrupted.

Errors go to stderr as one line naming the cause (and the file, for a bad file), never as a traceback.

Output: every command writes its files first and prints afterwards, so a reader that stops early
(``privis evaluate ... --json e.json | head -1``) never costs a file. Such a reader closes the pipe; that is
a normal end of the command (exit 0, nothing on stderr), handled once for every command by
:class:`PrivisGroup`, and progress lines printed while work goes on (:func:`say`) are dropped from then on
instead of stopping the work.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import re
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from privis.data.checks import check_int
from privis.errors import DatasetError, ImageFileError, InvalidInputError, PrivisError
from privis.methods.base import ParamsMixin, Protector, parse_literal


def _stdout_to_devnull() -> None:
    """Point file descriptor 1 at the null device: the reader of a pipe has gone, and Python would
    otherwise fail again when it flushes stdout at exit."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. a test runner's buffer)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


@contextmanager
def _reader_may_leave() -> Iterator[None]:
    """A closed stdout pipe ends the command normally: exit 0, no traceback."""
    try:
        yield
    except BrokenPipeError:
        _stdout_to_devnull()
        raise typer.Exit(0) from None


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    """A warning as one line on stderr, like the errors: no source file, line number or code line."""
    return f"privis: warning: {message}\n"


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Show the warnings a command raises as :func:`_format_warning` lines (restored afterwards)."""
    before = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        yield
    finally:
        warnings.formatwarning = before


#: Words a user may write after a flag, meaning on or off (``--resume true``).
BOOL_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0"})

#: The command being run: its parameters' Python names -> their command-line spelling (``overwrite`` ->
#: ``--overwrite``), for :func:`cli_spelling`. Set by :class:`PrivisGroup` when it resolves the command.
_SPELLINGS: ContextVar[Mapping[str, str] | None] = ContextVar("privis_cli_spellings", default=None)


def flag_spelling(param: Any) -> str:
    """How to write the flag ``param`` (a click option): ``--x/--no-x`` or ``--x`` (leave it out for off)."""
    if param.secondary_opts:
        return f"{param.opts[0]} or {param.secondary_opts[0]}"
    return f"{param.opts[0]} (leave it out for off)"


def refuse_flag_values(params: Sequence[Any], args: Sequence[str]) -> None:
    """Refuse a value written after a boolean flag, ``--resume true`` or ``--resume=false``, with one line
    saying how to write the flag; without this, click reports "unexpected extra argument (true)" and the
    run may start with the flag on although ``false`` was meant.

    Raises:
        InvalidInputError: naming the flag, the value and the flag's spelling.
    """
    flags = {opt: p for p in params if getattr(p, "is_flag", False) for opt in (*p.opts, *p.secondary_opts)}
    for i, arg in enumerate(args):
        if arg == "--":
            return
        name, eq, value = arg.partition("=")
        if name not in flags:
            continue
        if eq or (i + 1 < len(args) and args[i + 1].lower() in BOOL_WORDS):
            given = value if eq else args[i + 1]
            raise InvalidInputError(f"{name} is a flag and takes no value (got {given!r}): write "
                                    f"{flag_spelling(flags[name])}")


def cli_spelling(message: str, spellings: Mapping[str, str] | None = None) -> str:
    """``message`` with the Python names of the command's parameters written as the command line spells
    them: ``overwrite=True`` -> ``--overwrite``, ``batch_size`` -> ``--batch-size``. The Python API speaks of
    its keyword arguments; a user of the command knows only the options. Names of method parameters
    (after ``parameter `` or ``--param ``) are left alone, as are single words (``data``, ``out``) except in
    the ``name=True`` form.

    Examples:
        >>> cli_spelling("out/a.png exists; pass overwrite=True (--overwrite on the command line) to replace it",
        ...              {"overwrite": "--overwrite"})
        'out/a.png exists; pass --overwrite to replace it'
        >>> cli_spelling("batch_size must be >= 1; veil: parameter batch_size too", {"batch_size": "--batch-size"})
        '--batch-size must be >= 1; veil: parameter batch_size too'
    """
    for name, opt in (spellings if spellings is not None else _SPELLINGS.get() or {}).items():
        if name == opt.lstrip("-"):
            message = re.sub(rf"\b{name}=True\s*\({re.escape(opt)} on the command line\)", opt, message)
            message = re.sub(rf"{re.escape(opt)}\s*\({name}=True\)", opt, message)
        message = re.sub(rf"(?<![\w.-]){name}=True\b", opt, message)
        message = re.sub(rf"(?<![\w.-]){name}=False\b", f"no {opt}", message)
        if "_" in name:
            message = re.sub(rf"(?<![\w.'\"-]){name}(?![\w'\"=-])", functools.partial(_option_or_param, opt),
                             message)
    return message


def _option_or_param(opt: str, match: re.Match[str]) -> str:
    """``opt`` for a parameter name :func:`cli_spelling` found, unless the name is a method's parameter."""
    return match.group(0) if match.string[:match.start()].endswith(("parameter ", "--param ")) else opt


class PrivisGroup(TyperGroup):
    """The ``privis`` command group: :func:`_reader_may_leave` around parsing (``--help`` output) and
    around every command, the one place where a closed stdout pipe is handled; a warning raised by a
    command is one ``privis: warning: ...`` line on stderr. Before a command parses its arguments, a value
    written after a flag is refused (:func:`refuse_flag_values`) and the command's option spellings are
    recorded for its error lines (:func:`cli_spelling`)."""

    # Context types are Any: typer's own Context and its vendored click's differ, and these methods only pass
    # them on.
    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with _reader_may_leave():
            return super().make_context(info_name, args, parent, **extra)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            try:
                refuse_flag_values(command.params, rest)
            except InvalidInputError as exc:
                fail(str(exc), exit_code(exc))
            _SPELLINGS.set({p.name: p.opts[0] for p in command.params
                            if p.name and p.opts and p.opts[0].startswith("--")})
        return name, command, rest

    def invoke(self, ctx: Any) -> Any:
        with _reader_may_leave(), _warnings_as_lines():
            return super().invoke(ctx)


app = typer.Typer(
    cls=PrivisGroup,
    rich_markup_mode=None,  # plain click help: printed through click.echo, so a closed pipe ends it quietly
    name="privis",
    help="Protect image data handed to deep-learning pipelines, and measure the utility that survives "
    "and what an attacker can still recover.\n\n"
    "Exit status: 0 success; 2 bad input (usage, an option or parameter, an unknown name, an unusable path, a bad "
    "dataset spec or image file); 1 failure of the work (training diverged, the operating system, other "
    "errors); 130 interrupted. Errors are one line on stderr.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


#: Exit status of each error type a command may raise (the first matching entry wins); see the module docstring.
EXIT_RULE: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidInputError, 2),
    (DatasetError, 2),
    (ImageFileError, 2),
    (FloatingPointError, 1),
    (PrivisError, 1),
    (OSError, 1),
    (MemoryError, 1),
)


def exit_code(exc: BaseException) -> int:
    """The exit status :data:`EXIT_RULE` gives ``exc``: 2 for bad input, 1 for a failure of the work."""
    return next((code for kind, code in EXIT_RULE if isinstance(exc, kind)), 1)


def error_line(exc: BaseException) -> str:
    """The one stderr line (after ``privis: error:``) for ``exc``: its message, the file first for a bad file."""
    if isinstance(exc, ImageFileError):
        return f"bad image file {exc.path}: {exc.reason}"
    if isinstance(exc, PrivisError):
        return str(exc)
    if isinstance(exc, FloatingPointError):
        return f"numerical failure: {exc}"
    return f"{type(exc).__name__}: {exc}"


def fail(message: str, code: int = 1) -> None:
    """End the command: ``message`` as one ``privis: error:`` line on stderr (options spelt as on the
    command line, :func:`cli_spelling`), exit status ``code``."""
    typer.echo(f"privis: error: {cli_spelling(message)}", err=True)
    raise typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn the errors a command can expect into one stderr line and the exit status of :data:`EXIT_RULE`.

    A closed stdout pipe (``BrokenPipeError``) is passed on to :class:`PrivisGroup`: it is not an error.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:
            raise
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except (PrivisError, FloatingPointError, OSError, MemoryError) as exc:
            fail(error_line(exc), exit_code(exc))

    return wrapper  # type: ignore[return-value]


def say(line: str) -> None:
    """Print ``line`` on stdout while work goes on (progress, per-run summaries). When the reader has gone
    (a closed pipe), this line and all later output are dropped and the work continues."""
    try:
        typer.echo(line)
    except BrokenPipeError:
        _stdout_to_devnull()


def parse_params(pairs: list[str] | None, cls: type[ParamsMixin] | None = None) -> dict[str, Any]:
    """``["steps=100", "optimizer=sgd"]`` → ``{"steps": 100, "optimizer": "sgd"}``.

    With ``cls`` (a protector or attack class) each value is parsed strictly by the class's declaration
    (:meth:`~privis.methods.base.ParamsMixin.parse_param`: type, bounds, choices) and an unknown name is
    refused; without, values are Python literals or strings (:func:`~privis.methods.base.parse_literal`),
    NaN and infinities refused.

    Raises:
        InvalidInputError: a pair without ``=``, an unknown parameter, a bad value (one line naming both), or
            a parameter given twice (``sigma=1`` then ``sigma=2``: which one was meant is not known).
    """
    params: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise InvalidInputError(f"--param expects KEY=VALUE, got {pair!r}")
        key, raw = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        if key in params:
            raise InvalidInputError(f"--param {key} is given twice; give each parameter once")
        params[key] = cls.parse_param(key, raw) if cls is not None else parse_literal(raw, f"parameter {key}")
    return params


def method_class(name: str) -> type[Protector]:
    """The protector class registered under ``name``.

    Raises:
        InvalidInputError: no such method (the message lists the methods).
    """
    from privis import methods

    return methods.get(name)


def print_param_table(cls: type[ParamsMixin]) -> None:
    """Print each declared parameter of ``cls``: name, type and range, default, one-line doc."""
    rows = cls.param_table()
    if not rows:
        typer.echo("  (no parameters)")
        return
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        typer.echo(f"  {row['name']:<{width}}  {row['type']}; default {row['default']}")
        if row["doc"]:
            typer.echo(f"  {'':<{width}}  {row['doc']}")


def load_model_params(params: dict[str, Any]) -> dict[str, Any]:
    """Replace a ``*model`` parameter given as a checkpoint path by the loaded model.

    ``generator_model`` must hold a generator, every other ``*model`` a classifier (checked against the
    checkpoint's recorded architecture).
    """
    from privis.models import load_checkpoint, require_kind

    for key, value in list(params.items()):
        if key.endswith("model") and isinstance(value, str) and value.endswith((".pt", ".pth", ".ts")):
            params[key], info = load_model_from(value, load_checkpoint)
            kind = "generator" if key == "generator_model" else "classifier"
            require_kind(info, kind, value, hint=f"--param {key} takes a {kind}")
    return params


def load_model_from(path: str, loader: Callable[..., Any]) -> Any:
    if not Path(path).is_file():
        raise InvalidInputError(f"model checkpoint not found: {path}")
    return loader(path)


def check_paths(outputs: dict[str, Path | None], *, data: tuple[str | None, ...] = (),
                files: tuple[str | Path | None, ...] = (), params: tuple[dict[str, Any], ...] = (),
                folders: tuple[str, ...] = ()) -> None:
    """Refuse, before any work, an output path that is or touches an input, or cannot be written.

    Inputs are the paths of the ``data`` specs (``folder:``/``npz:``, and the Fashion-MNIST files this
    machine holds), the ``files`` read (checkpoints, keys) and every ``--param`` value naming an existing
    path. See :func:`privis.fsutil.check_outputs`.

    Raises:
        InvalidInputError: one line naming the option, the path and why.
    """
    from privis.data.spec import parse_spec
    from privis.errors import DatasetError
    from privis.fsutil import check_outputs

    inputs: list[str | Path] = [f for f in files if f is not None]
    for spec in data:
        if spec:
            try:
                parsed = parse_spec(spec)
            except DatasetError:
                continue  # the loader reports a bad spec in its own words
            if parsed.path is not None:
                inputs.append(parsed.path)
            elif parsed.name == "fashion-mnist":  # the files found on this machine (either split may be read)
                from privis.data.idx import find_fashion_mnist

                inputs += [f for split in ("train", "test") for f in find_fashion_mnist(split) or ()]
    for given in params:
        inputs += [v for v in given.values() if isinstance(v, str) and v and Path(v).expanduser().exists()]
    check_outputs(outputs, inputs, folders=folders)


def write_outputs(result: Any, json_path: Path | None, report_path: Path | None) -> None:
    """Write the requested files, then print the short summary (:func:`privis.cli.summary.print_result`:
    at most a screenful, with caveats and where all the figures went). Files first: a reader that stops
    early must not cost one."""
    from privis.cli.summary import print_result
    from privis.report import save_report

    written = []
    if json_path:
        result.save_json(json_path)
        written.append(str(json_path))
    if report_path:
        save_report(result, report_path)
        written.append(str(report_path))
    print_result(result, written, say)


JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the Result as JSON here.")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Write a self-contained HTML report here.")]
#: Seeds are integers in [0, 2**63 - 1], as every ``random_state`` (larger ones overflow torch's seeding).
SEED_MAX = 2**63 - 1
SeedOpt = Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX,
                                      help="Seed for every random choice (reproducible runs).")]
#: Help of every ``--param`` option of a method.
PARAM_HELP = ("Method parameter KEY=VALUE; repeatable. `privis methods METHOD` lists the parameters with their "
              "type, range and default.")


def _privis_wrote(path: Path) -> bool:
    """Whether ``path`` (``results.json`` or ``report.html``) is a file a privis command wrote: a Result's
    JSON (``name`` and ``summary``) or a privis HTML report (its title starts with ``privis:``)."""
    import json

    try:
        head = path.read_bytes()[: 1 << 20] if path.suffix == ".json" else path.read_bytes()[:512]
    except OSError:
        return False
    if path.suffix == ".json":
        try:
            doc = json.loads(head)
        except ValueError:
            return False
        return isinstance(doc, dict) and isinstance(doc.get("name"), str) and isinstance(doc.get("summary"), dict)
    return b"<title>privis: " in head


def _refuse_foreign_demo_files(out: Path) -> None:
    """``demo`` writes two fixed names into --out: refuse, before any work, to replace files of those names
    that privis did not write (a user's own report.html).

    Raises:
        InvalidInputError: naming the files.
    """
    foreign = [out / name for name in ("results.json", "report.html")
               if (out / name).is_file() and not _privis_wrote(out / name)]
    if foreign:
        raise InvalidInputError(f"refusing to overwrite {', '.join(map(str, foreign))}: not written by privis; move "
                                "them away or choose another --out")


@app.command()
@handle_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for report.html and results.json.")] = Path("privis-demo"),
    size: Annotated[str, typer.Option("--size", help="small (about a minute), medium (the default, a few minutes "
                                      "on 2 cores) or full (larger slices, longer training).")] = "medium",
    train_size: Annotated[int | None, typer.Option("--train-size", help="Owner's training slice (>= 1; overrides "
                                                   "--size's).")] = None,
    test_size: Annotated[int | None, typer.Option("--test-size", help="Test slice (>= 1; overrides --size's).")] = None,
    seed: SeedOpt = 0,
) -> None:
    """The main job: every method side by side on Fashion-MNIST (digits when it is absent).

    Protects the same training slice with every registered method, trains a model on each protected set,
    attacks each with fast restoration attacks, and writes OUT/report.html (image grid, utility and leakage
    table, privacy-utility plot) and OUT/results.json.
    """
    from privis.cli.summary import print_result
    from privis.experiments.demo import run_demo

    check_paths({"--out": out, "--out results.json": out / "results.json", "--out report.html": out / "report.html"},
                folders=("--out",))
    _refuse_foreign_demo_files(out)
    result = run_demo(out=out, seed=seed, size=size, train_size=train_size, test_size=test_size)
    print_result(result, [str(out / "results.json"), str(out / "report.html")], say)


@app.command()
@handle_errors
def train(
    data: Annotated[str, typer.Option("--data", help="Training dataset spec, e.g. 'fashion-mnist:train[:5000]' "
                                      "(quoted).")],
    model: Annotated[str, typer.Option("--model", help="Architecture (see `privis models`).")] = "lenet5",
    out: Annotated[Path, typer.Option("--out", help="Checkpoint path (.pt).")] = Path("model.pt"),
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    lr: Annotated[float, typer.Option("--lr")] = 1e-3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 128,
    optimizer: Annotated[str, typer.Option("--optimizer", help="sgd, adam, adamw (or any registered).")] = "adam",
    test: Annotated[str | None, typer.Option("--test", help="Evaluation dataset spec.")] = None,
    seed: SeedOpt = 0,
) -> None:
    """Train a classifier from the model zoo and save a checkpoint."""
    from privis.models import train_from_spec

    check_paths({"--out": out}, data=(data, test))
    run = train_from_spec(data, out, model=model, epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
                          test=test, seed=seed)
    typer.echo(f"trained {model} on {run.train_size} images: train accuracy {run.train_acc:.4f}"
               + (f", test accuracy {run.test_acc:.4f}" if run.test_acc is not None else "") + f"; wrote {out}")


@app.command()
@handle_errors
def evaluate(
    method: Annotated[str, typer.Argument(help="Protection method (see `privis methods`).")],
    data: Annotated[str, typer.Option("--data", help="fashion-mnist, digits, folder:PATH or npz:PATH.")] = (
        "fashion-mnist"),
    train_size: Annotated[int | None, typer.Option(
        "--train-size", help="Use at most this many training images (>= 1; leave out for the default, 10000 or "
        "the whole train split or range when smaller). A range in --data (e.g. 'fashion-mnist:train[:2000]') "
        "selects which.")] = 10000,
    test_size: Annotated[int | None, typer.Option(
        "--test-size", help="Use at most this many test images (>= 1; leave out for all).")] = None,
    model: Annotated[str, typer.Option("--model", help="Architecture of the baseline and service models.")] = "lenet5",
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Training epochs of both models "
                                               "(default: 10, more for small data).")] = None,
    augment: Annotated[str, typer.Option("--augment", help="Service-model training augmentation offered by the "
                                         "method (veil: sign-flip), or none; a comma list trains one service model "
                                         "each (the summary reports the first).")] = "default",
    service_layer: Annotated[bool, typer.Option(
        "--service-layer/--no-service-layer", help="Put the method's server-side input layer (visualmixer: "
        "sort each smallest-window cell) in front of the service model.")] = True,
    param: Annotated[list[str] | None, typer.Option("--param", help=PARAM_HELP)] = None,
    json_path: JsonOpt = None,
    report: ReportOpt = None,
    seed: SeedOpt = 0,
) -> None:
    """Utility and privacy of METHOD with the shared protocol: baseline and protected models on original
    and protected test data, |SSIM|/PSNR/VFE, throughput and peak memory (the same summary keys for every method)."""
    from privis.experiments.evaluate import EvalConfig
    from privis.experiments.evaluate import evaluate as run_eval

    raw = parse_params(param, method_class(method))
    check_paths({"--json": json_path, "--report": report}, data=(data,), params=(raw,))
    params = load_model_params(raw)
    cfg = EvalConfig(data=data, train_size=train_size, test_size=test_size, model=model, epochs=epochs,
                     augment=augment, service_layer=service_layer, seed=seed, params=params)
    result = run_eval(method, cfg)
    write_outputs(result, json_path, report)


@app.command()
@handle_errors
def experiment(
    name: Annotated[str, typer.Argument(help="Experiment name (see `privis experiments`).")],
    data: Annotated[str | None, typer.Option("--data", help="Dataset (default: the experiment's own).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes: a smoke run in seconds.")] = False,
    train_size: Annotated[int | None, typer.Option("--train-size", help="Training slice size, for experiments "
                                                   "that take one.")] = None,
    test_size: Annotated[int | None, typer.Option("--test-size", help="Test slice size, for experiments "
                                                  "that take one.")] = None,
    options: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Another keyword option of the experiment (repeatable), e.g. --set codec=codec.pt --set sigma=0.6; "
             "values are Python literals (numbers, lists, strings).")] = None,
    json_path: JsonOpt = None,
    report: ReportOpt = None,
    seed: SeedOpt = 0,
) -> None:
    """Run a named experiment that reproduces a paper's table or figure."""
    from privis import experiments
    from privis.methods.base import parse_literal

    check_paths({"--json": json_path, "--report": report}, data=(data,))
    exp = experiments.get(name)
    kwargs: dict[str, Any] = {"seed": seed, "quick": quick}
    if data:
        kwargs["data"] = data
    accepted = inspect.signature(exp.run).parameters
    for key, value in (("train_size", train_size), ("test_size", test_size)):
        if value is not None:
            check_int(value, f"--{key.replace('_', '-')}", hint=" (leave it out for the default)")
            if key not in accepted:
                raise InvalidInputError(f"experiment {name!r} takes no --{key.replace('_', '-')}")
            kwargs[key] = value
    reserved = {"seed", "quick", "data", "train_size", "test_size"}
    for item in options or []:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InvalidInputError(f"--set takes KEY=VALUE, got {item!r}")
        if key in reserved:
            raise InvalidInputError(f"--set {key}: use --{key.replace('_', '-')} instead")
        if key not in accepted:
            options_text = ", ".join(k for k in accepted if k not in reserved) or "none"
            raise InvalidInputError(f"experiment {name!r} takes no option {key!r} (its options: {options_text})")
        kwargs[key] = parse_literal(raw, f"--set {key}")
    result = exp.run(**kwargs)
    write_outputs(result, json_path, report)


@app.command()
def datasets() -> None:
    """List the built-in datasets."""
    from privis import data as pdata

    for name, description in pdata.available().items():
        typer.echo(f"{name:<16} {description}")


@app.command("methods")
@handle_errors
def list_methods(
    name: Annotated[str | None, typer.Argument(help="Show this method's parameters (type, range, default).")] = None,
) -> None:
    """List the protection methods, or the parameters of one (what --param KEY=VALUE accepts)."""
    from privis import methods

    print_listing(methods.available(), name, method_class, width=16)


def print_listing(classes: Mapping[str, type[ParamsMixin]], name: str | None,
                  lookup: Callable[[str], type[ParamsMixin]], *, width: int) -> None:
    """One line per registered class (name and the first line of its docstring, then its ``citation``
    indented below) or, for ``name``, that class's citation and declared parameters
    (:func:`print_param_table`); ``lookup`` finds ``name`` or raises."""
    if name is not None:
        cls = lookup(name)
        typer.echo(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0]}")
        if cls.citation:
            typer.echo(textwrap.fill(cls.citation, 110, initial_indent="  cite: ", subsequent_indent=" " * 8,
                                     break_on_hyphens=False))  # a title's "Attribute-Preserving" stays whole
        print_param_table(cls)
        return
    for key, cls in classes.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        typer.echo(f"{key:<{width}} {doc}")
        if cls.citation:
            typer.echo(textwrap.fill(cls.citation, 110, initial_indent=" " * (width + 1),
                                     subsequent_indent=" " * (width + 1), break_on_hyphens=False))


@app.command("models")
def list_models() -> None:
    """List the model zoo's architectures."""
    from privis import models

    for name in models.available():
        typer.echo(name)


@app.command("experiments")
def list_experiments() -> None:
    """List the named experiments."""
    from privis import experiments

    for name, exp in experiments.available().items():
        typer.echo(f"{name:<18} {exp.description}")


def _register_command_modules() -> None:
    """Add the commands defined in ``privis/cli/*_cmd.py`` modules (each has ``register(app)``)."""
    package = Path(__file__).parent
    for path in sorted(package.glob("*_cmd.py")):
        importlib.import_module(f"privis.cli.{path.stem}").register(app)


_register_command_modules()


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
