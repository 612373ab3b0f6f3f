"""``privis privacy dp-image``: what DP-Image's noise proves, under the thesis' assumption and under none.

Prints the claimed bound (Theorem 4.4.1 of the thesis, amplification by iteration: needs a contractive codec)
beside the post-processing bound (holds for any codec), each as ``(epsilon, delta)``-DP by the classic and the
tight RDP conversion with the best order, and the assumption each rests on
(:func:`privis.privacy.dp_image.dp_image_bounds`). ``--epsilon`` adds the noise each bound needs for a target;
``--codec`` measures the codec's Lipschitz constant (``privis.latent.measure_lipschitz``) and says whether the
claimed bound's assumption is certified, supported by the measurement, or not supported::

    privis privacy dp-image --clip 20 --latent-dim 9216 --sigma 0.2 --steps 100000 --delta 1e-8
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from privis.cli.main import JsonOpt, SeedOpt, check_paths, handle_errors
from privis.errors import InvalidInputError, PrivisError
from privis.privacy.dp_image import BoundStatement, DPImageBounds, dp_image_bounds
from privis.privacy.dp_image import sensitivity as clipped_sensitivity
from privis.results import Result

privacy_app = typer.Typer(name="privacy", help="Privacy accounting: what a mechanism's noise proves.",
                          no_args_is_help=True, rich_markup_mode=None, add_completion=False)


def _load_codec(codec_path: Path) -> tuple[Any, Callable[..., Any]]:
    """The codec in ``codec_path`` and ``privis.latent.measure_lipschitz``."""
    if not codec_path.is_file():
        raise InvalidInputError(f"codec not found: {codec_path}")
    from privis import latent

    load_codec, measure = getattr(latent, "load_codec", None), getattr(latent, "measure_lipschitz", None)
    if load_codec is None or measure is None:
        raise PrivisError("this privis has no codec loader or Lipschitz measurement (privis.latent)")
    return load_codec(codec_path), measure


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _summary(bounds: DPImageBounds, measured: Any) -> dict[str, float]:
    """The Result's flat summary: each statement's epsilon and order (classic, tight), the inputs, the sigma
    each statement needs for the target (when given) and the codec's measurement (when made)."""
    summary: dict[str, float] = {}
    for key, s in _statements(bounds):
        summary |= {f"epsilon_{key}": s.epsilon, f"alpha_{key}": s.alpha, f"epsilon_{key}_tight": s.epsilon_tight,
                    f"alpha_{key}_tight": s.alpha_tight}
    summary |= {"sensitivity": bounds.sensitivity, "sigma": bounds.sigma, "steps": bounds.steps, "delta": bounds.delta}
    for key, s in _statements(bounds):
        if s.sigma_for_target is not None and s.sigma_for_target_tight is not None:
            summary |= {f"sigma_needed_{key}": s.sigma_for_target,
                        f"sigma_needed_{key}_tight": s.sigma_for_target_tight}
    if measured is not None:
        summary |= {f"lipschitz_{name}": float(getattr(measured, name)) for name in
                    ("estimate", "jacobian_max", "pair_ratio_max", "certified_bound")
                    if getattr(measured, name, None) is not None}
    return summary


def _statements(bounds: DPImageBounds) -> tuple[tuple[str, BoundStatement], ...]:
    return ("claimed", bounds.claimed), ("post_processing", bounds.post_processing)


def _print(bounds: DPImageBounds, measured: bool) -> None:
    typer.echo(f"DP-Image: sensitivity {_number(bounds.sensitivity)}, sigma {_number(bounds.sigma)}, "
               f"steps {bounds.steps}, delta {_number(bounds.delta)}")
    typer.echo(f"  {'bound':<16} {'epsilon':>12} {'alpha':>10} {'epsilon tight':>14} {'alpha tight':>11}")
    for _, s in _statements(bounds):
        typer.echo(f"  {s.name:<16} {_number(s.epsilon):>12} {s.alpha:>10.7g} "
                   f"{_number(s.epsilon_tight):>14} {s.alpha_tight:>11.7g}")
    for _, s in _statements(bounds):
        typer.echo(f"  {s.name} assumes: {s.assumption}")
    backing = (f"Lipschitz {'certified bound' if bounds.certified else 'estimate'} {_number(bounds.lipschitz)}"
               if measured else "no codec measured; --codec measures it")
    typer.echo(f"  verdict on the claimed bound: {bounds.verdict} ({backing})")
    typer.echo(f"  coverage: {bounds.coverage}")
    if bounds.target_epsilon is not None:
        typer.echo(f"  sigma needed for epsilon {_number(bounds.target_epsilon)} at delta {_number(bounds.delta)}:")
        for _, s in _statements(bounds):
            typer.echo(f"    {s.name:<16} classic {_number(s.sigma_for_target)}, "
                       f"tight {_number(s.sigma_for_target_tight)}")


def register(app: typer.Typer) -> None:
    @privacy_app.command("dp-image")
    @handle_errors
    def dp_image(
        sigma: Annotated[float, typer.Option("--sigma", help="Noise standard deviation per latent coordinate and "
                                             "step (latent units).")],
        steps: Annotated[int, typer.Option("--steps", help="Iterations T (>= 1).")],
        delta: Annotated[float, typer.Option("--delta", help="delta of (epsilon, delta)-DP, in (0, 1).")],
        sensitivity: Annotated[float | None, typer.Option("--sensitivity", help="L2 sensitivity of the clipped "
                                                          "latent; or give --clip and --latent-dim.")] = None,
        clip: Annotated[float | None, typer.Option("--clip", help="Clipping bound c: the box [-c, c] per "
                                                   "coordinate (sensitivity 2c sqrt(d)) or the L2 radius "
                                                   "(2c).")] = None,
        latent_dim: Annotated[int | None, typer.Option("--latent-dim", help="Noised latent coordinates d "
                                                       "(default with --codec: the codec's).")] = None,
        clip_kind: Annotated[str, typer.Option("--clip-kind", help="box or l2.")] = "box",
        epsilon: Annotated[float | None, typer.Option("--epsilon", help="Also print the sigma each bound needs "
                                                      "for this epsilon.")] = None,
        codec: Annotated[Path | None, typer.Option("--codec", help="Codec file: measure its Lipschitz constant "
                                                   "for the verdict on the claimed bound.")] = None,
        json_path: JsonOpt = None,
        seed: SeedOpt = 0,
    ) -> None:
        """Claimed (contractive codec) and post-processing (any codec) epsilon of DP-Image, classic and tight."""
        if (sensitivity is None) == (clip is None):
            raise InvalidInputError("give either --sensitivity or --clip (with --latent-dim), not both or neither")
        check_paths({"--json": json_path}, files=(codec,))
        loaded, measure = _load_codec(codec) if codec is not None else (None, None)
        if clip is not None:
            if latent_dim is None:
                if loaded is None:
                    raise InvalidInputError("--clip needs --latent-dim (or --codec to read it from)")
                latent_dim = loaded.latent_dim
            sensitivity = clipped_sensitivity(clip, latent_dim, clip_kind)
        assert sensitivity is not None
        # every value is checked before the (slow) measurement of the codec
        bounds = dp_image_bounds(sensitivity=sensitivity, sigma=sigma, steps=steps, delta=delta, target_epsilon=epsilon)
        measured = None
        if measure is not None:
            measured = measure(loaded, random_state=seed)
            certified = measured.certified_bound is not None and measured.certified_bound <= 1
            bounds = dp_image_bounds(
                sensitivity=sensitivity, sigma=sigma, steps=steps, delta=delta, target_epsilon=epsilon,
                lipschitz=float(measured.certified_bound if certified else measured.estimate), certified=certified)
        if json_path:
            Result("privacy-dp-image", summary=_summary(bounds, measured),
                   tables={"bounds": [asdict(s) for _, s in _statements(bounds)]},
                   config={"sensitivity": sensitivity, "clip": clip, "latent_dim": latent_dim, "clip_kind": clip_kind,
                           "sigma": sigma, "steps": steps, "delta": delta, "target_epsilon": epsilon,
                           "codec": str(codec) if codec else None, "verdict": bounds.verdict},
                   notes=[f"{s.name}: assumes {s.assumption}" for _, s in _statements(bounds)]
                   + [f"verdict on the claimed bound: {bounds.verdict}", f"coverage: {bounds.coverage}"],
                   ).save_json(json_path)
        _print(bounds, measured is not None)
        if json_path:
            typer.echo(f"wrote {json_path}")

    app.add_typer(privacy_app)


__all__ = ["register"]
