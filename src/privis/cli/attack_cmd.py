"""``privis attack ATTACK --method METHOD`` and ``privis attacks``: run one attack on one method, list attacks.

The protocol is the leaderboard's (:func:`privis.experiments.leaderboard.run_attack`): the owner's training
slice is protected and a service model trained on it, the attacker holds a disjoint auxiliary slice, and the
attack's outcome is scored against the original test images.
"""

from __future__ import annotations

from typing import Annotated

import typer

from privis.attacks.base import Attack
from privis.cli.main import (
    PARAM_HELP,
    JsonOpt,
    ReportOpt,
    SeedOpt,
    check_paths,
    handle_errors,
    load_model_params,
    method_class,
    parse_params,
    print_listing,
    write_outputs,
)


def _attack_class(name: str) -> type[Attack]:
    from privis import attacks

    return attacks.get(name)


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def attack(
        name: Annotated[str, typer.Argument(help="Attack (see `privis attacks`).")],
        method: Annotated[str, typer.Option("--method", help="Protection method under attack (see `privis methods`).")],
        data: Annotated[str, typer.Option("--data", help="fashion-mnist, digits, folder:PATH or npz:PATH.")] = (
            "fashion-mnist"),
        param: Annotated[list[str] | None, typer.Option("--param", help=PARAM_HELP)] = None,
        attack_param: Annotated[list[str] | None, typer.Option("--attack-param", help="Attack parameter KEY=VALUE; "
                                                               "repeatable. `privis attacks ATTACK` lists them.")
                                ] = None,
        train_size: Annotated[int, typer.Option("--train-size", min=1, help="Owner's training slice.")] = 3000,
        test_size: Annotated[int, typer.Option("--test-size", min=1, help="Test slice (victims, non-members).")] = 1000,
        aux_size: Annotated[int, typer.Option("--aux-size", min=1, help="Attacker's auxiliary slice (disjoint from "
                                              "the owner's).")] = 2000,
        attack_size: Annotated[int, typer.Option("--attack-size", min=1, help="Protected test images "
                                                 "attacked.")] = 500,
        json_path: JsonOpt = None,
        report: ReportOpt = None,
        seed: SeedOpt = 0,
    ) -> None:
        """Run ATTACK against METHOD: recovered images scored by |SSIM|, PSNR and auxiliary accuracy, or the
        attack's own scores (membership AUC, keyspace bits)."""
        from privis.experiments.leaderboard import run_attack

        raw = parse_params(param, method_class(method))
        attack_raw = parse_params(attack_param, _attack_class(name))
        check_paths({"--json": json_path, "--report": report}, data=(data,), params=(raw, attack_raw))
        result = run_attack(name, method, data=data, params=load_model_params(raw),
                            attack_params=attack_raw, seed=seed, train_size=train_size,
                            test_size=test_size, aux_size=aux_size, attack_size=attack_size)
        write_outputs(result, json_path, report)

    @app.command("attacks")
    @handle_errors
    def list_attacks(
        name: Annotated[str | None, typer.Argument(help="Show this attack's parameters (type, range, default).")
                        ] = None,
    ) -> None:
        """List the attacks, or the parameters of one (what --attack-param KEY=VALUE accepts)."""
        from privis import attacks

        print_listing(attacks.available(), name, _attack_class, width=22)


__all__ = ["register"]
