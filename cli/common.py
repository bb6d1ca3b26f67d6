"""What every command shares: error reporting, exit codes and common options."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys

import click

from bpnet.errors import BpnetError


def debug_enabled(ctx=None):
    ctx = ctx or click.get_current_context(silent=True)
    root = ctx.find_root() if ctx else None
    return bool((root and (root.obj or {}).get("debug")) or os.environ.get("BPNET_DEBUG"))


def _set_debug(ctx, _param, value):
    if value:
        root = ctx.find_root()
        root.obj = dict(root.obj or {}, debug=True)
    return value


debug_option = click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    help="Show a full traceback on errors (also BPNET_DEBUG=1).",
)


def fail(message, code=1):
    """Print one error line and exit with ``code`` (2: bad usage/input, 1: run time)."""
    click.echo(f"bpnet: error: {message}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def interrupted():
    """Ctrl-C inside the block: one line and exit status 130 (a traceback with --debug)."""
    try:
        yield
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        fail("interrupted", 130)


def handle_errors(fn):
    """Turn library errors into one line and an exit status; --debug shows the traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BpnetError as e:
            if debug_enabled():
                raise
            fail(str(e), e.exit_code)
        except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except KeyboardInterrupt:
            with interrupted():
                raise
        except MemoryError:
            if debug_enabled():
                raise
            fail("out of memory", 1)
        except Exception as e:  # an unexpected failure: still one line unless --debug
            if debug_enabled():
                raise
            fail(f"{type(e).__name__}: {e} (run with --debug for the traceback)", 1)

    return wrapper


def threads_option(help_suffix=""):
    """``--threads N``: threads for the matrix products (see bpnet.nn.threads)."""
    return click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        help="Threads for the matrix products [default: $BPNET_THREADS, else every core this "
        "process may use]" + help_suffix + ".",
    )


def data_dir_option(fn):
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        default=None,
        envvar="BPNET_DATA_DIR",
        show_envvar=True,
        help="Folder holding <dataset>/ with the IDX files [default: the per-user data "
        "home, e.g. ~/.local/share/bpnet].",
    )(fn)


def _list_configs(ctx, _param, value):
    if value:
        from bpnet.training.sources import list_configs

        click.echo(format_table(["config", "description"], list_configs(), "ll"))
        ctx.exit()


def schema_option(kind):
    """``--schema``: print the JSON Schema of ``kind`` files (config or sweep) and exit."""

    def show(ctx, _param, value):
        if value:
            from bpnet.training.config import config_schema, schema_text

            if kind == "sweep":
                from bpnet.sweep.spec import sweep_schema as schema
            else:
                schema = config_schema
            click.echo(schema_text(schema()), nl=False)
            ctx.exit()

    return click.option(
        "--schema",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=show,
        help=f"Print the JSON Schema of {kind} files (for an "
        f"editor's YAML language server) and exit.",
    )


def _one_word_sets(_ctx, param, values):
    """Each --set value must be one word KEY=VALUE: ``--set train.epochs 3`` leaves the key
    alone here (and 3 a stray argument), which is told as such before anything else."""
    for text in values:
        if "=" in text:
            continue
        words = text.split()
        key = words[0] if words else "KEY"
        value = words[1] if len(words) == 2 else "VALUE"
        raise click.BadParameter(
            f"{text!r} is not KEY=VALUE: write --set {key}={value}, as one word "
            f"(no space around =)",
            param=param,
        )
    return values


def config_options(required=True):
    """``--config PATH|NAME`` (required or not), repeatable ``--set KEY=VALUE`` and an
    eager ``--list-configs``; the command receives ``config`` and ``sets``."""

    def decorate(fn):
        fn = click.option(
            "--set",
            "sets",
            metavar="KEY=VALUE",
            multiple=True,
            callback=_one_word_sets,
            help="Override one config value by dotted key, the value written in YAML "
            "(--set train.lr=0.05, --set model.hidden=[100,50]); repeatable, applied in order.",
        )(fn)
        fn = click.option(
            "--list-configs",
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_list_configs,
            help="List the shipped configs and exit.",
        )(fn)
        return click.option(
            "--config",
            metavar="PATH|NAME",
            required=required,
            help="YAML config: a file, or else the name of a shipped config (see --list-configs).",
        )(fn)

    return decorate


def load_config_from_cli(config, sets, **shortcuts):
    """``load_config`` for a command: ``sets`` are the ``--set`` strings; each shortcut is
    a config key with ``_`` for ``.`` (``train_epochs=5``, ``output_dir=...``,
    ``data_dir=...``) holding an option's typed value, None when it was not given."""
    from bpnet.training.config import FIELDS
    from bpnet.training.sources import load_config

    keys = {key.replace(".", "_"): key for key in FIELDS}
    unknown = set(shortcuts) - set(keys)
    if unknown:
        raise TypeError(f"not config keys: {', '.join(sorted(unknown))}")
    return load_config(config, sets, {keys[k]: v for k, v in shortcuts.items()})


def echo_json(obj):
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


def format_table(headers, rows, align=None):
    """Plain aligned text table; ``align`` is a string of 'l'/'r' per column."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or "l" + "r" * (len(headers) - 1)
    lines = []
    for r in cells:
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def progress_bar_factory(quiet):
    """A factory of byte-counting tqdm bars for downloads (silent when quiet or not a TTY)."""
    from tqdm import tqdm

    class Bar(tqdm):
        monitor_interval = 0  # no monitor thread: every chunk written refreshes the bar anyway

    return functools.partial(
        Bar,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=True,
        disable=True if quiet else None,
        dynamic_ncols=True,
    )


def warn(message):
    click.echo(f"bpnet: warning: {message}", err=True)


def report(message):
    """A download's note on stderr: information (``bpnet.data.download.Info``: the files about
    to be fetched) as it is, anything else as a warning."""
    from bpnet.data.download import Info

    if isinstance(message, Info):
        click.echo(message, err=True)
    else:
        warn(message)


def ensure_data(dataset, data_dir, offline, quiet=False, splits=("train", "test")):
    """Download the missing files of a dataset's ``splits`` first, saying so (unless
    ``offline``)."""
    from bpnet.data.download import ensure_dataset

    return ensure_dataset(
        dataset,
        data_dir,
        offline=offline,
        progress=progress_bar_factory(quiet),
        report=None if quiet else report,
        splits=splits,
    )


def image_of_test_split(dataset, data_dir, offline, index):
    """(uint8 pixels, label) of image ``index`` of ``dataset``'s test split (``--index``),
    the split downloaded first when missing (unless ``offline``)."""
    from bpnet.data.idx import load_split
    from bpnet.errors import InputError

    ensure_data(dataset, data_dir, offline, splits=("test",))
    images, labels = load_split(data_dir, dataset, "test")
    if index >= len(images):
        raise InputError(
            f"--index {index}: the {dataset} test split has {len(images)} images, "
            f"expected 0 to {len(images) - 1}"
        )
    return images[index], int(labels[index])
