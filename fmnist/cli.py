"""`fmnist`: the model registry and predictions from the terminal.

  fmnist runs [--all]                           leaderboard: finished runs, params, accuracies, versions
  fmnist promote VERSION --reason "..."         move `champion` by hand (--force: to a worse one)
  fmnist rollback --reason "..."                undo the latest champion move still in force
  fmnist history                                every champion move: who, when, why
  fmnist server                                 the team stack: PostgreSQL + MLflow server
  fmnist publish                                log + register this workspace's run on the store
                                                now in force (MLFLOW_TRACKING_URI), no retraining
  fmnist predict PATH... [--json]               top-3 classes with the champion (or --model-uri)
  fmnist payload PATH...                        the JSON body for `mlflow models serve`
  fmnist profile NAME                           a params profile as `dvc exp run` -S flags
  fmnist demo [--port 7860]                     the web demo on http://127.0.0.1:7860

Run it from the repo root (the MLflow store and params.yaml live there). Errors a user can hit
print one line and exit 1.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Any, Callable

from fmnist.errors import InputFileError, PipelineError


def _params() -> dict[str, Any]:
    from fmnist import config

    return config.load_params()


def _model_name(args: argparse.Namespace) -> str:
    return args.name or _params()["registry"]["model_name"]


def _describe(version: Any) -> str:
    if version is None:
        return "none"
    from fmnist import registry

    accuracy = version.tags.get(registry.VAL_TAG) or version.tags.get(registry.LEGACY_VAL_TAG)
    return f"version {version.version}" + (f" (val accuracy {float(accuracy):.4f})"
                                           if accuracy else "")


def cmd_promote(args: argparse.Namespace) -> int:
    from fmnist import registry

    old, new = registry.promote(registry.client(), _model_name(args), args.version, args.reason,
                                force=args.force)
    print(f"champion: {_describe(old)} -> {_describe(new)}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from fmnist import registry

    old, new = registry.rollback(registry.client(), _model_name(args), args.reason)
    print(f"champion: {_describe(old)} -> {_describe(new)}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from fmnist import registry

    print(registry.format_history(registry.history(registry.client(), _model_name(args))))
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    from fmnist import server

    return server.serve(server.StackConfig.from_args(args))


def cmd_runs(args: argparse.Namespace) -> int:
    from fmnist import leaderboard, registry

    experiment = args.experiment or _params()["mlflow"]["experiment"]
    rows = leaderboard.leaderboard(registry.client(), experiment, _model_name(args), args.limit,
                                   include_unfinished=args.all)
    print(json.dumps(rows, indent=2) if args.json else leaderboard.format_table(rows))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from fmnist import publish

    outcome = publish.publish(_params())
    logged = "logged as run" if outcome["newly_logged"] else "already logged as run"
    print(f"{outcome['tracking_uri']}: {logged} {outcome['run_id']}")
    action = "registered" if outcome["newly_registered"] else "already registered as"
    print(f"{outcome['model_name']}: {action} version {outcome['version']}; "
          f"champion is version {outcome['champion']}: {outcome['reason']}")
    return 0


def _champion_uri(args: argparse.Namespace) -> str:
    """The champion's URI, after checking the store has one (an empty store names publish)."""
    from fmnist import publish, registry
    from fmnist.serving import predict

    publish.require_champion(registry.client(), _model_name(args))
    return predict.champion_uri(_model_name(args))


def _format_prediction(result: dict[str, Any]) -> str:
    top = "  ".join(f"{c['class']} {c['probability']:.1%}" for c in result["top"])
    return f"{result['input']}: {top}"


def cmd_predict(args: argparse.Namespace) -> int:
    from fmnist.serving import predict

    model_uri = args.model_uri or _champion_uri(args)
    model = predict.load_model(model_uri, trust=args.trust_model)
    results, errors = predict.predict_files(model, args.paths, args.invert)
    if args.json:
        print(json.dumps({"model_uri": model_uri, "predictions": results, "errors": errors},
                         indent=2))
    else:
        for result in results:
            print(_format_prediction(result))
            if result["warning"]:
                print(f"warning: {result['input']}: {result['warning']}", file=sys.stderr)
    for error in errors:
        print(f"error: {error['error']}: {error['message']}", file=sys.stderr)  # names the file
    return 1 if errors else 0


def cmd_payload(args: argparse.Namespace) -> int:
    from fmnist.serving import predict

    _, images, errors = predict.load_files(args.paths, args.invert)
    if errors:  # a partial request would silently shift which answer is which image's
        raise InputFileError("; ".join(error["message"] for error in errors))
    json.dump(predict.request_body(images), sys.stdout)
    print()
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from fmnist import profiles

    print(shlex.join(profiles.set_flags(profiles.load(args.profile))))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fmnist.data.formats import IDX_FILES
    from fmnist.serving import demo

    model_uri = args.model_uri or _champion_uri(args)
    test_images = (args.test_images
                   or Path(_params()["download"]["local_dir"]) / IDX_FILES["test"][0])
    demo.serve(model_uri, Path(test_images), args.host, args.port, trust=args.trust_model)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from fmnist.serving.inputs import INVERT_CHOICES

    parser = argparse.ArgumentParser(prog="fmnist", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name",
                        help="registered model (default: params.yaml registry.model_name)")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str
                ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    promote = command("promote", cmd_promote, "make VERSION the champion, recording who/why/when")
    promote.add_argument("version")
    promote.add_argument("--reason", help="why (required; recorded on the version)")
    promote.add_argument("--force", action="store_true",
                         help="also a version not comparable with the champion, or worse on "
                              "validation")
    rollback = command("rollback", cmd_rollback,
                       "undo the latest champion move still in force (walks back, never cycles)")
    rollback.add_argument("--reason", help="why (required; recorded on both versions)")
    command("history", cmd_history, "every move of `champion`, oldest first")
    runs = command("runs", cmd_runs,
                   "the experiment's finished runs, best model_val_accuracy first")
    runs.add_argument("--experiment", help="MLflow experiment (default: params mlflow.experiment)")
    runs.add_argument("--limit", type=int, default=50)
    runs.add_argument("--all", action="store_true",
                      help="also failed, killed and still running runs")
    runs.add_argument("--json", action="store_true", help="machine-readable rows")
    for name, handler, text in (
            ("predict", cmd_predict, "top-3 classes for PNG/JPEG images, idx files, Kaggle CSVs"),
            ("payload", cmd_payload, "print the /invocations JSON body for these images")):
        sub = command(name, handler, text)
        sub.add_argument("paths", nargs="+", metavar="PATH")
        sub.add_argument("--invert", choices=INVERT_CHOICES, default="auto",
                         help="photos: invert to a light garment on black (auto: when the "
                              "border is mostly bright)")
    command("publish", cmd_publish, "log this workspace's run (model, params, metrics, figures, "
            "data) to the tracking store now in force and register it there, without "
            "retraining: e.g. after `export MLFLOW_TRACKING_URI=http://...`")
    server = command("server", cmd_server, "run the team stack (PostgreSQL + mlflow server) "
                     "until Ctrl-C; data in .team/")
    server.add_argument("--home", help="folder for the database, artifacts, logs (default .team)")
    server.add_argument("--host", default="127.0.0.1",
                        help="where MLflow listens (0.0.0.0: the team's machines)")
    server.add_argument("--port", type=int, default=5000, help="MLflow's port")
    server.add_argument("--db-port", type=int, default=5433, help="PostgreSQL's port (loopback)")
    server.add_argument("--workers", type=int, default=2)
    server.add_argument("--allowed-hosts", help="MLflow's accepted Host headers, e.g. "
                        "'mlflow.lan:5000' (needed for names other than localhost)")
    profile = command("profile", cmd_profile,
                      "print a named profile (fmnist/profiles/NAME.yaml) as `dvc exp run` -S flags, e.g. "
                      "dvc exp run $(fmnist profile fast)")
    profile.add_argument("profile", help="baseline, fast, gpu, ...")
    web = command("demo", cmd_demo, "the web demo: upload an image, see the top-3 classes and "
                  "where the model looked (Grad-CAM)")
    web.add_argument("--model-uri", help="any MLflow model URI (default: the champion)")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=7860)
    web.add_argument("--test-images", help="idx file the random test images come from "
                     "(default: t10k images in params download.local_dir)")
    web.add_argument("--trust-model", action="store_true",
                     help="load a model that can run code (a SavedModel, a Lambda layer); "
                     "refused by default")
    predict = commands.choices["predict"]
    predict.add_argument("--model-uri", help="any MLflow model URI (default: the champion)")
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    predict.add_argument("--trust-model", action="store_true",
                         help="load a model that can run code (a SavedModel, a Lambda layer); "
                         "refused by default")
    return parser


def quiet_environment() -> None:
    """Quiet TensorFlow's oneDNN line and MLflow's download bars (the log level is set in
    fmnist/__init__.py); effective only before they load. TF_ENABLE_ONEDNN_OPTS=0: the "oneDNN
    custom operations are on" line is printed before any log level applies; those kernels speed
    up training, not a few predictions. setdefault: a user's own setting wins."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def main(argv: list[str] | None = None) -> int:
    quiet_environment()
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except PipelineError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
