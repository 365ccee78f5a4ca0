"""The ``beamtrack`` command.

``beamtrack track [LATTICE]``      track a Gaussian beam, print beam statistics
``beamtrack crosscheck [LATTICE]`` compare every installed backend with NumPy
``beamtrack optics [LATTICE]``    Twiss functions along the line (periodic or from given values)
``beamtrack convert IN OUT``        convert a lattice file to another format
``beamtrack backends``             list installed backends, versions and devices

A lattice may be any file :func:`beamtrack.load` reads (JSON, MAD-X, Bmad, Elegant,
PALS); its reference particle is used unless ``--species``/``--p0c`` are given.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence

import numpy as np

from beamtrack import backends as backend_registry
from beamtrack.backends.defaults import get_defaults
from beamtrack.backends.errors import BeamtrackError
from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.crosscheck import FLOAT64_TOLERANCE, crosscheck
from beamtrack.lattice.io import FORMATS, format_of, load, load_beam, save
from beamtrack.tracking.beams import gaussian_particles
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.reference import Reference
from beamtrack.tracking.species import electron, species
from beamtrack.tracking.statistics import beam_statistics
from beamtrack.tracking.stepping import METHODS

#: RMS spreads of the Gaussian beam the commands track, unless a JSON lattice's
#: ``beam`` section gives ``sigma``.
DEFAULT_SIGMA = [5e-4, 5e-5, 5e-4, 5e-5, 1e-3, 1e-3]
#: Reference momentum [eV] for a lattice that gives none.
DEFAULT_P0C = 1.0e9


def _example_lattice() -> str:
    from beamtrack import EXAMPLE_LATTICE

    return str(EXAMPLE_LATTICE)


def _prepare_backends() -> None:
    """Let JAX compute in float64 (the CLI owns the process, so it may set the flag)."""
    if "jax" in backend_registry.available():
        backend_registry.get("jax").enable_float64()


def _load(args: argparse.Namespace) -> tuple[str, Beamline]:
    path = args.lattice or _example_lattice()
    return path, load(path, format=args.format, sequence=args.sequence)


def _reference(line: Beamline, args: argparse.Namespace) -> Reference:
    """The line's reference with ``--species``/``--p0c`` applied (1 GeV/c electrons
    where neither gives a value)."""
    known = line.reference
    chosen = (species(args.species) if args.species is not None
              else known.species if known is not None else electron)
    p0c = args.p0c if args.p0c is not None else known.p0c if known is not None else DEFAULT_P0C
    return Reference(chosen, p0c)


def _beam(path: str, line: Beamline, args: argparse.Namespace, backend: str) -> Particles:
    sigma = DEFAULT_SIGMA
    if format_of(path, args.format) == "json":
        sigma = (load_beam(path) or {}).get("sigma", sigma)
    return gaussian_particles(
        args.particles,
        sigma=sigma,
        reference=_reference(line, args),
        seed=args.seed,
        backend=backend,
    )


_COLUMNS = (
    ("element", "{:<12}", None),
    ("s [m]", "{:>8.3f}", "s"),
    ("alive", "{:>7d}", "n_alive"),
    ("<x> [um]", "{:>10.3f}", "mean_x"),
    ("<y> [um]", "{:>10.3f}", "mean_y"),
    ("sig_x [um]", "{:>11.3f}", "sigma_x"),
    ("sig_y [um]", "{:>11.3f}", "sigma_y"),
    ("sig_z [um]", "{:>11.3f}", "sigma_z"),
    ("eps_x [nm]", "{:>11.4f}", "emittance_x"),
    ("eps_y [nm]", "{:>11.4f}", "emittance_y"),
)
_SCALE = {"mean_x": 1e6, "mean_y": 1e6, "sigma_x": 1e6, "sigma_y": 1e6, "sigma_z": 1e6,
          "emittance_x": 1e9, "emittance_y": 1e9}


def _row(name: str, particles: Particles, width: int = 12) -> str:
    backend = backend_registry.backend_of(particles.coords)
    stats = {k: float(backend.to_numpy(v)) for k, v in beam_statistics(particles).items()}
    stats["s"] = float(backend.to_numpy(particles.s))
    cells = []
    for _, fmt, key in _COLUMNS:
        if key is None:
            cells.append(name.ljust(width))
        elif key == "n_alive":
            cells.append(fmt.format(int(round(stats[key]))))
        else:
            cells.append(fmt.format(stats[key] * _SCALE.get(key, 1.0)))
    return " ".join(cells)


def _header(width: int = 12) -> str:
    widths = [len(fmt.format(0 if "d" in fmt else 0.0)) if key else width
              for _, fmt, key in _COLUMNS]
    return " ".join(title.rjust(w) if key else title.ljust(w)
                    for (title, _, key), w in zip(_COLUMNS, widths))


def cmd_track(args: argparse.Namespace) -> int:
    _prepare_backends()
    path, line = _load(args)
    particles = _beam(path, line, args, args.backend)
    print(f"lattice {path}: {line.name}, {len(line)} elements, length "
          f"{float(np.asarray(line.length)):.4f} m")
    print(f"{args.particles} particles, backend {args.backend}, method "
          f"{args.method or line.method}, seed {args.seed}")
    # The name column fits the longest name: two elements never look the same.
    width = max([12, *(len(name) for name in line.names())])
    print(_header(width))
    print(_row("(start)", particles, width))
    final = particles
    for element, final in line.track_each(particles, method=args.method):
        if args.each:
            print(_row(element.name, final, width))
    if not args.each:
        print(_row("(end)", final, width))
    return 0


def cmd_crosscheck(args: argparse.Namespace) -> int:
    _prepare_backends()
    path, line = _load(args)
    particles = _beam(path, line, args, "numpy")
    methods = [args.method] if args.method else list(METHODS)
    failed = False
    print(f"lattice {path}: {len(line)} elements, {args.particles} particles, "
          f"tolerance {args.tolerance:g} (relative)")
    print(f"{'method':<12} {'backend':<18} {'max abs dev':>12} {'max rel dev':>12} "
          f"{'alive diff':>10}  result")
    for method in methods:
        results = crosscheck(line, particles, backends=args.backends, method=method,
                             tolerance=args.tolerance)
        for name, dev in results.items():
            failed |= not dev.ok
            print(f"{method:<12} {name:<18} {dev.max_abs:>12.3e} {dev.max_rel:>12.3e} "
                  f"{dev.alive_mismatch:>10d}  {'ok' if dev.ok else 'FAIL'}")
        if not results:
            print(f"{method:<12} (no backend besides numpy installed)")
    return 1 if failed else 0


def cmd_optics(args: argparse.Namespace) -> int:
    import math

    from beamtrack.lattice.optics import twiss
    from beamtrack.tracking.optics import TwissInit

    path, line = _load(args)
    reference = _reference(line, args)
    p0c, mc2 = reference.p0c, reference.mc2
    initial = None
    if args.beta_x is not None or args.beta_y is not None:
        if args.beta_x is None or args.beta_y is None:
            print("beamtrack: error: give both --beta-x and --beta-y for single-pass optics",
                  file=sys.stderr)
            return 2
        initial = TwissInit(beta_x=args.beta_x, alpha_x=args.alpha_x, beta_y=args.beta_y,
                            alpha_y=args.alpha_y, dx=args.dx, dpx=args.dpx)
    table = twiss(line, initial, p0c=p0c, mc2=mc2)
    kind = "periodic" if initial is None else "single pass"
    print(f"lattice {path}: {line.name}, {len(line)} elements, {kind} optics, p0c {p0c:g} eV")
    print(f"{'element':<12} {'s [m]':>8} {'beta_x':>9} {'alpha_x':>9} {'mu_x/2pi':>9} "
          f"{'D_x':>9} {'beta_y':>9} {'alpha_y':>9} {'mu_y/2pi':>9} {'D_y':>9}")
    two_pi = 2.0 * math.pi
    for i, name in enumerate(table.names):
        print(f"{name[:12]:<12} {table.s[i]:>8.3f} {table.beta_x[i]:>9.4f} "
              f"{table.alpha_x[i]:>9.4f} {table.mu_x[i] / two_pi:>9.5f} {table.dx[i]:>9.4f} "
              f"{table.beta_y[i]:>9.4f} {table.alpha_y[i]:>9.4f} "
              f"{table.mu_y[i] / two_pi:>9.5f} {table.dy[i]:>9.4f}")
    if table.tune_x is not None:
        print(f"tunes: Q_x = {float(table.tune_x):.6f}, Q_y = {float(table.tune_y):.6f}")
    if args.plot:
        from beamtrack.lattice.plotting import plot_twiss

        ax = plot_twiss(table, line)
        # The format from the extension, PNG without one; written to exactly this path
        # (matplotlib would otherwise append ".png" to a name without extension).
        suffix = os.path.splitext(args.plot)[1].lstrip(".").lower() or "png"
        ax.figure.savefig(args.plot, dpi=120, bbox_inches="tight", format=suffix)
        print(f"plot written to {args.plot}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    line = load(args.input, format=args.input_format, sequence=args.sequence)
    if args.p0c is not None or args.species is not None:
        line = line.with_reference(_reference(line, args))
    save(line, args.output, format=args.output_format)
    reference = line.reference
    described = (f"{reference.species.name}, p0c {reference.p0c:g} eV" if reference is not None
                 else "no reference particle")
    print(f"{args.input} -> {args.output}: {line.name}, {len(line)} elements, {described}")
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    installed = backend_registry.available()
    print(f"{'backend':<18} {'version':<16} devices")
    for name in backend_registry.KNOWN:
        backend = backend_registry.get(name) if name in installed else None
        if backend is None:
            print(f"{name:<18} {'-':<16} not installed")
            continue
        devices = ", ".join(str(d) for d in backend.devices())
        print(f"{name:<18} {backend.version():<16} {devices}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``beamtrack`` command."""
    parser = argparse.ArgumentParser(
        prog="beamtrack",
        description="Differentiable beam dynamics tracking on NumPy, PyTorch, JAX and CuPy.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    lattice_help = "lattice file: .json, MAD-X, Bmad, Elegant or PALS (default: bundled FODO)"

    def lattice_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("lattice", nargs="?", help=lattice_help)
        p.add_argument("--format", choices=list(FORMATS), default=None,
                       help="lattice format (default: from the file extension)")
        p.add_argument("--sequence", default=None,
                       help="sequence or line to use (default: the file's)")

    def beam_options(p: argparse.ArgumentParser) -> None:
        lattice_options(p)
        p.add_argument("--particles", type=int, default=10_000, help="number of particles")
        p.add_argument("--method", choices=METHODS, default=None,
                       help="tracking method (default: the lattice's)")
        p.add_argument("--seed", type=int, default=0, help="random seed of the beam")
        p.add_argument("--p0c", type=float, default=None,
                       help="reference momentum [eV] (default: the lattice's, else 1e9)")
        p.add_argument("--species", default=None,
                       help="particle species (default: the lattice's, else electron)")

    track = sub.add_parser("track", help="track a Gaussian beam and print its statistics")
    beam_options(track)
    track.add_argument("--backend", default=get_defaults().backend,
                       choices=backend_registry.KNOWN,
                       help="array library to track with (default: %(default)s, the "
                            "project's default: BEAMTRACK_BACKEND or set_defaults)")
    track.add_argument("--each", action="store_true", help="print a row after every element")
    track.set_defaults(func=cmd_track)

    check = sub.add_parser("crosscheck", help="compare every installed backend with NumPy")
    beam_options(check)
    check.add_argument("--backends", nargs="+", default=None, help="backends to compare")
    check.add_argument("--tolerance", type=float, default=FLOAT64_TOLERANCE,
                       help="largest acceptable relative deviation")
    check.set_defaults(func=cmd_crosscheck)

    optics = sub.add_parser("optics", help="Twiss functions along the lattice")
    lattice_options(optics)
    optics.add_argument("--plot", default=None, help="write a plot of the optics to this file")
    optics.add_argument("--p0c", type=float, default=None, help="reference momentum [eV]")
    optics.add_argument("--species", default=None, help="particle species")
    for name in ("beta-x", "beta-y"):
        optics.add_argument(f"--{name}", type=float, default=None,
                            help="initial beta [m] (single pass; default: periodic solution)")
    for name in ("alpha-x", "alpha-y", "dx", "dpx"):
        optics.add_argument(f"--{name}", type=float, default=0.0, help="initial value")
    optics.set_defaults(func=cmd_optics)

    convert = sub.add_parser("convert", help="convert a lattice file to another format")
    convert.add_argument("input", help="lattice file to read")
    convert.add_argument("output", help="lattice file to write (format from its extension)")
    convert.add_argument("--from", dest="input_format", choices=list(FORMATS), default=None,
                         help="format of the input (default: from its extension)")
    convert.add_argument("--to", dest="output_format", choices=list(FORMATS), default=None,
                         help="format of the output (default: from its extension)")
    convert.add_argument("--sequence", default=None, help="sequence or line to convert")
    convert.add_argument("--p0c", type=float, default=None,
                         help="set the reference momentum [eV]")
    convert.add_argument("--species", default=None, help="set the reference species")
    convert.set_defaults(func=cmd_convert)

    listing = sub.add_parser("backends", help="list installed backends, versions and devices")
    listing.set_defaults(func=cmd_backends)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``beamtrack`` console script."""
    args = build_parser().parse_args(argv)
    problem = _bad_option(args)
    if problem:
        print(f"beamtrack: error: {problem}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except BeamtrackError as exc:
        print(f"beamtrack: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError, ImportError, TypeError, KeyError,
            ArithmeticError) as exc:
        # Bad input that no reader or check turned into a BeamtrackError: still one
        # line (RecursionError is a RuntimeError), never a traceback.
        detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"beamtrack: error: {detail}", file=sys.stderr)
        return 2


def _bad_option(args: argparse.Namespace) -> str | None:
    """What is wrong with the numeric options, or ``None``."""
    if getattr(args, "particles", 1) < 1:
        return "--particles must be at least 1"
    p0c = getattr(args, "p0c", None)
    if p0c is not None and not (math.isfinite(p0c) and p0c > 0.0):
        return f"--p0c must be a finite reference momentum > 0 [eV], got {p0c!r}"
    tolerance = getattr(args, "tolerance", None)
    if tolerance is not None and not math.isfinite(tolerance):
        # inf would pass every comparison, NaN none; a negative tolerance is kept: it
        # fails every comparison, a check of the failure path.
        return f"--tolerance must be a finite number, got {tolerance!r}"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
