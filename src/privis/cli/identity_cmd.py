"""``privis identity verify-dlib``: privis' torch port of dlib's face recogniser against dlib itself.

Describes the same real face chips (scikit-image's astronaut and LFW-subset faces, upscaled for dlib) with
privis' :class:`~privis.identity.dlib_resnet.DlibFaceResNet` and with dlib's ``compute_face_descriptor``, and
reports the largest descriptor difference, whether the same-person decisions at distance 0.6 agree over all
pairs, and both speeds (:func:`privis.identity.dlib_identity.verify_dlib_port`)::

    privis identity verify-dlib --faces 40 --json verify.json
"""

from __future__ import annotations

from typing import Annotated

import typer

from privis.cli.main import JsonOpt, check_paths, handle_errors, say
from privis.cli.summary import print_result

identity_app = typer.Typer(name="identity", help="Identity models: face recognisers privis measures with.",
                           no_args_is_help=True, rich_markup_mode=None, add_completion=False)


def register(app: typer.Typer) -> None:
    @identity_app.command("verify-dlib")
    @handle_errors
    def verify_dlib(
        faces: Annotated[int, typer.Option("--faces", min=2, help="Real face chips to compare on.")] = 40,
        batch_size: Annotated[int, typer.Option("--batch-size", min=1,
                                                help="Chips per forward pass of the torch port.")] = 64,
        json_path: JsonOpt = None,
    ) -> None:
        """Compare privis' torch port of dlib's face ResNet with dlib on the same real face chips."""
        from privis.identity.dlib_identity import verify_dlib_port

        check_paths({"--json": json_path})
        result = verify_dlib_port(faces, batch_size=batch_size)
        if json_path:
            result.save_json(json_path)
        print_result(result, [str(json_path)] if json_path else [], say)

    app.add_typer(identity_app)


__all__ = ["register"]
