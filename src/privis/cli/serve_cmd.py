"""``privis serve``, ``privis client``, ``privis export`` and ``privis train-generator``: the client/server
deployment of protective perturbation (Ye et al., "Visual Privacy Protection in Mobile Image Recognition
Using Protective Perturbation", ACM MMSys 2022, doi:10.1145/3524273.3528189, Sections 3.4 and 5).

Workflow::

    privis train --data 'fashion-mnist:train[:10000]' --model lenet5 --out target.pt
    privis train-generator --data 'fashion-mnist:train[:10000]' --target target.pt --out gen.pt --epochs 12
    privis serve --model target.pt                      # the provider: the unchanged classifier
    privis serve --model target.pt --client --generator gen.onnx   # + the browser client at /
    privis client --generator gen.pt --server http://127.0.0.1:8000 a.png b.png   # the user
    privis export --generator gen.pt --onnx gen.onnx --torchscript gen.ts      # for on-device use
"""

from __future__ import annotations

import errno
import json
import socket
from pathlib import Path
from typing import Annotated

import typer

from privis.cli.main import SEED_MAX, check_paths, handle_errors, load_model_params, parse_params, say
from privis.errors import InvalidInputError, PrivisError


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, for uvicorn to serve on.

    Raises:
        InvalidInputError: ``host`` does not resolve.
        PrivisError: the address cannot be bound (port in use, address not on this machine, no permission);
            the message names the address and the cause.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise InvalidInputError(f"cannot serve on {host}:{port}: unknown host ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a just-stopped server's port, not a live one
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        cause = "the port is in use by another process; choose another --port" if exc.errno == errno.EADDRINUSE \
            else (exc.strerror or str(exc))
        raise PrivisError(f"cannot serve on {host}:{port}: {cause}") from None
    return sock


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def serve(
        model: Annotated[Path, typer.Option("--model", help="Classifier checkpoint (.pt) or TorchScript file.")],
        host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
        max_upload_bytes: Annotated[int, typer.Option("--max-upload-bytes", min=1)] = 8 * 1024 * 1024,
        max_pixels: Annotated[int, typer.Option("--max-pixels", min=1, help="Largest W*H an image may declare.")] = (
            4096 * 4096),
        max_files: Annotated[int, typer.Option("--max-files", min=1, help="Most images per request.")] = 256,
        client: Annotated[bool, typer.Option("--client", help="Also serve the browser client at / (protects "
                                             "images in the browser; needs --generator).")] = False,
        generator: Annotated[Path | None, typer.Option("--generator", help="ONNX generator the browser client "
                                                       "runs (privis export --onnx); with --client.")] = None,
        request_log: Annotated[Path | None, typer.Option("--request-log", help="Append one JSON line per "
                                                         "received upload (hashes and sizes, never pixels).")
                               ] = None,
    ) -> None:
        """Serve an unchanged classifier over HTTP: POST /v1/predict, GET /v1/health, GET /v1/model,
        OpenAPI at /openapi.json; with ``--client --generator GEN.onnx`` also the browser client at /, which
        protects images on the user's machine and sends only the protected images.

        The model is loaded and the address bound before anything is printed: a generator checkpoint, a port
        in use or an address that cannot be bound ends the command with one line (exit 2 or 1) and no
        "serving on" line. ``--port 0`` takes a free port, shown in the "serving on" line. A closed stdout
        does not stop the server.
        """
        import uvicorn

        from privis.serve.app import create_app

        if client != (generator is not None):
            raise InvalidInputError("--client and --generator go together: the browser client runs the generator "
                                    "given by --generator (an .onnx file)")
        check_paths({"--request-log": request_log}, files=(model, generator))
        api = create_app(model, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels, max_files=max_files,
                         client_generator=generator, request_log=request_log)
        sock = listen(host, port)
        try:
            served = api.state.served
            bound = sock.getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            say(f"serving {served.arch or 'model'} from {model} ({served.channels}x{served.image_size[0]}x"
                f"{served.image_size[1]}, {len(served.class_names)} classes) on http://{shown}:{bound}"
                + (f"; browser client at http://{shown}:{bound}/" if client else ""))
            config = uvicorn.Config(api, host=host, port=bound, log_level="warning", limit_concurrency=256,
                                    timeout_keep_alive=5)
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()

    @app.command()
    @handle_errors
    def client(
        images: Annotated[list[Path], typer.Argument(help="Image files to classify.")],
        generator: Annotated[Path, typer.Option("--generator", help="Generator: privis checkpoint, TorchScript "
                                                "or .onnx.")],
        server: Annotated[str, typer.Option("--server", help="Server base URL.")] = "http://127.0.0.1:8000",
        batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per request.")] = 64,
        json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object per image.")] = False,
    ) -> None:
        """Protect IMAGES locally with the generator and send only the protected images to the server;
        print its predictions."""
        from privis.serve.client import run_client

        for r in run_client(generator, server, images, batch_size=batch_size):
            if json_out:
                typer.echo(json.dumps({"file": r.file, "class_index": r.class_index, "class_name": r.class_name,
                                       "confidence": r.confidence}))
            else:
                typer.echo(f"{r.file}\t{r.class_index}\t{r.class_name}\t{r.confidence:.4f}")

    @app.command("export")
    @handle_errors
    def export_cmd(
        generator: Annotated[Path, typer.Option("--generator", help="Generator checkpoint (.pt).")],
        onnx: Annotated[Path | None, typer.Option("--onnx", help="Write an ONNX file here.")] = None,
        torchscript: Annotated[Path | None, typer.Option("--torchscript", help="Write a TorchScript file here.")] = (
            None),
        size: Annotated[int, typer.Option("--size", min=1, help="Side of the example image used for export "
                                          "and checks.")] = 32,
        atol: Annotated[float, typer.Option("--atol", help="Largest tolerated |exported - PyTorch|.")] = 1e-4,
    ) -> None:
        """Export a perturbation generator to ONNX and/or TorchScript and check the files reproduce
        PyTorch's output (several batch and image sizes)."""
        from privis.models.export import export_generator_checkpoint

        if onnx is None and torchscript is None:
            raise InvalidInputError("give --onnx PATH, --torchscript PATH or both")
        check_paths({"--onnx": onnx, "--torchscript": torchscript}, files=(generator,))
        report = export_generator_checkpoint(generator, onnx_path=onnx, torchscript_path=torchscript, size=size,
                                             atol=atol)
        for kind in ("onnx", "torchscript"):
            if kind in report:
                typer.echo(f"wrote {report[kind]} ({kind}; dynamic size: {report[f'{kind}_dynamic_size']}; "
                           f"max |diff| vs PyTorch {report[f'{kind}_max_abs_diff']:.3g} over shapes "
                           f"{report[f'{kind}_checked_shapes']})")

    @app.command("train-generator")
    @handle_errors
    def train_generator_cmd(
        data: Annotated[str, typer.Option("--data", help="Training data spec, e.g. 'fashion-mnist:train[:10000]' "
                                          "(quoted: shells expand brackets).")],
        out: Annotated[Path, typer.Option("--out", help="Generator checkpoint to write (.pt).")],
        target: Annotated[Path | None, typer.Option("--target", help="The service's classifier checkpoint; "
                                                    "default: train the target architecture.")] = None,
        aux: Annotated[Path | None, typer.Option("--aux", help="Auxiliary classifier checkpoint; default: "
                                                 "train the auxiliary architecture.")] = None,
        target_out: Annotated[Path | None, typer.Option("--target-out", help="Also save the target model "
                                                        "(to serve it).")] = None,
        epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Generator training epochs "
                                                   "(default: the method's, `privis methods perturbation`).")
                          ] = None,
        param: Annotated[list[str] | None, typer.Option("--param", help="ProtectivePerturbation parameter "
                                                        "KEY=VALUE; repeatable.")] = None,
        seed: Annotated[int | None, typer.Option("--seed", min=0, max=SEED_MAX,
                                                       help="Seed; default: OS entropy.")] = None,
    ) -> None:
        """Train a protective perturbation generator (Algorithm 1) against a frozen target model."""
        from privis.methods.perturbation import ProtectivePerturbation, train_generator_from_spec

        raw = parse_params(param, ProtectivePerturbation)
        if epochs is not None:
            if "epochs" in raw:
                raise InvalidInputError("give the generator's epochs once: --epochs or --param epochs=, not both")
            raw["epochs"] = epochs
        check_paths({"--out": out, "--target-out": target_out}, data=(data,), files=(target, aux), params=(raw,))
        pp, n = train_generator_from_spec(data, out, target=target, aux=aux, target_out=target_out,
                                       params=load_model_params(raw), seed=seed)
        h = pp.history_
        typer.echo(f"trained the generator on {n} images: best epoch {h.best_epoch} (validation loss "
                   f"{h.best_val_loss:.4f}); wrote {out}" + (f" and {target_out}" if target_out else ""))
