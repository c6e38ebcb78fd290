"""Engines by name, from a file, or from an installed package: parse, load, check, identify.

The ``engine`` value (the config key, ``run --engine``, ``compare --engines``, a grid's
``engines``) takes three forms:

- a built-in name (``baseline``, ``migrc``, ...): the engines of this package;
- ``PATH.py:CLASS``: class CLASS defined in the Python file PATH. In a config or grid file
  PATH is relative to that file; on the command line it is relative to the current directory
  (the CLI rewrites it relative to the config: ``relative_to_config``);
- the name of an installed engine: an entry point of the group ``migrc_bench.engines``
  (``[project.entry-points."migrc_bench.engines"] latr = "mypkg.latr:Latr"``).

An engine from outside the package is checked before anything replays: it is a subclass of
``Engine``, every hook it overrides takes that hook's arguments, and no public method is a near
miss of a hook's name (a misspelt hook would silently never be called). Every failure -- and,
during the replay, every exception raised in the engine's file -- is one ``EngineError``
naming the file and line. Its identity (name, source file, the file's sha256) goes into
runs.parquet; the sha256 also goes into its run id, so an edited engine makes new runs.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine_spec import installed, split_file_spec
from ..engine_spec import describe_forms as _describe_forms
from ..errors import ConfigError, EngineError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the directory holding migrc_bench/


@dataclass(frozen=True)
class EngineIdentity:
    """Who an engine is, as runs.parquet records it."""

    name: str    # the ``engine`` column and compare's column id
    spec: str    # the config's engine value
    kind: str    # "builtin", "file" or "installed"
    file: str    # its source file (built-ins: relative to the package's parent directory)
    sha256: str  # of that file's bytes

    @property
    def run_id_part(self) -> str:
        """What the run id hashes besides trace and config: the name for a built-in (the tool's
        version identifies its code, as it does the model's, and old run ids stay valid), name
        and file hash for any other engine (an edited file makes new runs, not replacements)."""
        return self.name if self.kind == "builtin" else f"{self.name}@{self.sha256}"


# ---- the forms of an engine value (checked in engine_spec.py, below the config) -----------
def builtin_names() -> tuple[str, ...]:
    from ..config import ENGINES

    return ENGINES


def describe_forms() -> str:
    """The accepted forms, for error messages."""
    return _describe_forms(builtin_names())


def relative_to_config(spec: str, from_dir: Path, config_dir: Path) -> str:
    """A file engine named relative to ``from_dir`` (the current directory, a grid file's
    directory), rewritten relative to the config's directory, where configs resolve paths."""
    parts = split_file_spec(spec)
    if parts is None:
        return spec
    path, cls = parts
    p = Path(path).expanduser()
    if p.is_absolute():
        return spec
    return f"{os.path.relpath((from_dir / p).resolve(), config_dir)}:{cls}"


# ---- loading ------------------------------------------------------------------------------
def resolve(spec: str, base_dir: Path) -> tuple[type, EngineIdentity]:
    """The engine class and identity ``spec`` names (file paths relative to ``base_dir``)."""
    parts = split_file_spec(spec)
    if parts is not None:
        return _from_file(spec, parts[0], parts[1], base_dir)
    from .builtin import classes

    builtins = classes()
    if spec in builtins:
        cls = builtins[spec]
        src = Path(inspect.getsourcefile(cls) or "").resolve()
        return cls, EngineIdentity(spec, spec, "builtin", _package_relative(src),
                                   hashlib.sha256(src.read_bytes()).hexdigest())
    if spec in builtin_names():
        raise ConfigError(f"config key 'engine': {spec!r} is not implemented yet (available: "
                          f"{', '.join(sorted(builtins)) or 'none'}); set tiering.enabled = false "
                          f"to replay without migration")
    eps = installed()
    if spec in eps:
        return _from_entry_point(spec, eps[spec])
    raise ConfigError(f"config key 'engine': expected {describe_forms()}, got {spec!r}")


def identify(spec: str, base_dir: Path) -> EngineIdentity:
    return resolve(spec, base_dir)[1]


def _package_relative(path: Path) -> str:
    try:
        return path.relative_to(_PACKAGE_PARENT).as_posix()
    except ValueError:
        return str(path)


def shown(path: str | Path) -> str:
    """A path as error messages show it: relative to the current directory when inside it."""
    p = Path(path)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _from_file(spec: str, path_text: str, cls_name: str, base_dir: Path) -> tuple[type, EngineIdentity]:
    p = Path(path_text).expanduser()
    path = p if p.is_absolute() else (base_dir / p).resolve()
    where = shown(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EngineError(f"{where}: no such engine file") from None
    except IsADirectoryError:
        raise EngineError(f"{where}: is a directory, not an engine file") from None
    except OSError as exc:
        raise EngineError(f"{where}: cannot read the engine file ({exc.strerror})") from None
    sha = hashlib.sha256(data).hexdigest()
    module = _import(path, sha, where)
    obj = vars(module).get(cls_name)
    if obj is None:
        defined = [n for n, v in vars(module).items()
                   if inspect.isclass(v) and v.__module__ == module.__name__]
        raise EngineError(f"{where}: no class {cls_name!r} in the engine file (it defines: "
                          f"{', '.join(defined) or 'no class'})")
    if inspect.isclass(obj) and obj.__module__ != module.__name__:
        raise EngineError(f"{where}: {cls_name} is imported there from {obj.__module__}, not "
                          f"defined there; name the file that defines it")
    check_class(obj, cls_name, where)
    return obj, EngineIdentity(_engine_name(obj, where), spec, "file", str(path), sha)


_MODULES: dict[tuple[Path, str], Any] = {}


def _import(path: Path, sha: str, where: str) -> Any:
    """Import an engine file once per process and content (an edited file is imported anew)."""
    key = (path, sha)
    if key in _MODULES:
        return _MODULES[key]
    modname = "migrc_bench_user_engine_" + hashlib.sha256(f"{path}:{sha}".encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise EngineError(f"{where}: cannot import the engine file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module  # dataclasses and pickling look classes up there
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(modname, None)
        raise EngineError(_syntax_error(exc, where)) from None
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raises, one line
        sys.modules.pop(modname, None)
        raise EngineError(located(exc, path, "while importing it")) from None
    _MODULES[key] = module
    return module


def _syntax_error(exc: SyntaxError, where: str) -> str:
    at = shown(exc.filename) if exc.filename else where
    return f"{at}{':' + str(exc.lineno) if exc.lineno else ''}: syntax error: {exc.msg}"


def _from_entry_point(name: str, ep: Any) -> tuple[type, EngineIdentity]:
    try:
        obj = ep.load()
    except SyntaxError as exc:
        raise EngineError(f"installed engine {name!r} ({ep.value}): "
                          f"{_syntax_error(exc, ep.value)}") from None
    except Exception as exc:  # noqa: BLE001
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if not f.filename.startswith("<") and "importlib" not in f.filename]
        at = f"{shown(frames[-1].filename)}:{frames[-1].lineno}: " if frames else ""
        raise EngineError(f"installed engine {name!r} ({ep.value}): {at}{_what(exc)}") from None
    src = inspect.getsourcefile(obj) if inspect.isclass(obj) else None
    where = shown(src) if src else ep.value
    check_class(obj, ep.value, where)
    if not NAME_RE.match(name) or name in builtin_names():
        raise EngineError(f"installed engine {name!r} ({ep.value}): the entry point's name must "
                          f"be a short name that is not a built-in engine's")
    sha = hashlib.sha256(Path(src).read_bytes()).hexdigest() if src else ""
    return obj, EngineIdentity(name, name, "installed", str(Path(src).resolve()) if src else "", sha)


# ---- checking a class against the interface ----------------------------------------------
@functools.lru_cache(maxsize=1)
def hook_signatures() -> dict[str, inspect.Signature]:
    """Every method of Engine an engine may override (its public ones, and __init__)."""
    from .base import Engine

    hooks = {n: inspect.signature(v) for n, v in vars(Engine).items()
             if inspect.isfunction(v) and not n.startswith("_")}
    hooks["__init__"] = inspect.signature(Engine.__init__)
    return hooks


def _is_ours(klass: type) -> bool:
    return klass.__module__ == "migrc_bench" or klass.__module__.startswith("migrc_bench.")


def _line(obj: Any) -> str:
    try:
        return f":{inspect.getsourcelines(obj)[1]}"
    except (OSError, TypeError):
        return ""


def _plain(sig: inspect.Signature) -> str:
    """``(self, cpu, to_kernel)``: a signature without annotations, for messages."""
    return str(sig.replace(parameters=[p.replace(annotation=p.empty, default=p.empty)
                                       for p in sig.parameters.values()],
                           return_annotation=sig.empty))


def _accepts(fn: Any, hook: inspect.Signature) -> bool:
    """Whether ``fn`` can be called as the harness calls the hook: positionally, self first."""
    try:
        inspect.signature(fn).bind(*([None] * len(hook.parameters)))
    except TypeError:
        return False
    return True


def check_class(obj: Any, cls_name: str, where: str) -> None:
    """An engine class from outside the package must keep the interface (docs/engines.md)."""
    from .base import Engine

    if not inspect.isclass(obj):
        raise EngineError(f"{where}: {cls_name} is a {type(obj).__name__}, not an engine class")
    if not issubclass(obj, Engine):
        raise EngineError(f"{where}{_line(obj)}: class {obj.__name__} is not a subclass of "
                          f"migrc_bench.engines.Engine")
    hooks = hook_signatures()
    for klass in obj.__mro__:
        if klass is object or _is_ours(klass):
            continue
        for attr, value in vars(klass).items():
            if attr in hooks:
                if not inspect.isfunction(value):
                    raise EngineError(f"{where}{_line(klass)}: {klass.__name__}.{attr} must be a "
                                      f"plain method, like Engine.{attr}{_plain(hooks[attr])}")
                if not _accepts(value, hooks[attr]):
                    raise EngineError(
                        f"{where}:{value.__code__.co_firstlineno}: {klass.__name__}.{attr}"
                        f"{_plain(inspect.signature(value))} does not take the hook's arguments "
                        f"Engine.{attr}{_plain(hooks[attr])}")
            elif inspect.isfunction(value) and not attr.startswith("_"):
                near = difflib.get_close_matches(attr, [h for h in hooks if h != "__init__"],
                                                 n=1, cutoff=0.88)
                if near:
                    raise EngineError(
                        f"{where}:{value.__code__.co_firstlineno}: {klass.__name__}.{attr} is not "
                        f"an engine hook: did you mean {near[0]}? (start a helper's name with '_')")


def _engine_name(obj: type, where: str) -> str:
    """The class's own ``name``, else its class name in lower case; never a built-in's."""
    name: Any = obj.__name__.lower()
    for klass in obj.__mro__:
        if _is_ours(klass):
            break
        if "name" in vars(klass):
            name = vars(klass)["name"]
            break
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise EngineError(f"{where}{_line(obj)}: {obj.__name__}.name must be a short name "
                          f"(letters, digits, '.', '_', '+', '-'), got {name!r}")
    if name in builtin_names():
        raise EngineError(f"{where}{_line(obj)}: {obj.__name__}.name is {name!r}, a built-in "
                          f"engine's name; give the class a name of its own (name = \"...\")")
    return name


# ---- errors raised by an engine's code during a replay -------------------------------------
def _what(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@functools.lru_cache(maxsize=512)
def _real(filename: str) -> str:
    return os.path.realpath(filename)


def located(exc: BaseException, path: Path, doing: str = "") -> str:
    """``file:line: Error: message (in function)`` at the last frame of ``exc`` in ``path``."""
    target = os.path.realpath(path)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _real(f.filename) == target]
    if not frames:
        return f"{shown(path)}: {_what(exc)}" + (f" ({doing})" if doing else "")
    f = frames[-1]
    where = f" (in {f.name})" if f.name != "<module>" else (f" ({doing})" if doing else "")
    return f"{shown(path)}:{f.lineno}: {_what(exc)}{where}"


def hook_error(exc: BaseException, ident: EngineIdentity | None) -> EngineError | None:
    """The one-line error for an exception an outside engine's code raised during a replay, or
    None when the traceback never passes through its file (then it is the harness's bug)."""
    if ident is None or ident.kind == "builtin" or not ident.file:
        return None
    target = os.path.realpath(ident.file)
    if not any(_real(f.filename) == target for f in traceback.extract_tb(exc.__traceback__)):
        return None
    return EngineError(located(exc, Path(ident.file)))
