"""`cmr ingest PATH...`: publish studies (folders or zips, found recursively) to the new-exams topic, with a
progress bar; `--pacs` sends them to a PACS by C-STORE instead (the Orthanc path); `--dead-letters` lists what
the worker refused, and why; `cmr ingest-bridge` publishes an Orthanc's stable studies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from orchestration.cli.lazy import get_settings

console = Console(stderr=True)


def _settings(bootstrap: Optional[str]):  # noqa: ANN202 - Settings, imported lazily with the rest
    settings = get_settings()
    return settings.model_copy(update={"kafka_bootstrap": bootstrap}) if bootstrap else settings


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(paths: list[Path] = typer.Argument(None, help="study folders, zips, or folders holding them"),
               bootstrap: Optional[str] = typer.Option(None, help="Kafka bootstrap (default CMR_KAFKA_BOOTSTRAP)"),
               dead_letters: bool = typer.Option(False, "--dead-letters", help="list the dead-letter topic and exit"),
               pacs: Optional[str] = typer.Option(None, help="send the studies to a PACS by C-STORE instead "
                                                  "(HOST:PORT or HOST:PORT/AET, e.g. 127.0.0.1:4242/ORTHANC); its bridge publishes them"),
               as_json: bool = typer.Option(False, "--json", help="print what was published (or the dead letters) as JSON"),
               journal: Optional[Path] = typer.Option(None, help="record each published study in this file (JSON "
                                                      "lines), for --resume after a broker restart"),
               resume: Optional[Path] = typer.Option(None, help="re-publish the studies of this journal that the "
                                                     "index (CMR_SEARCH_URL) does not hold"),
               ) -> None:
        """Publish studies for the ingest worker (one NewExam each; impressions from a `cmr synth` reports.jsonl)."""
        settings = _settings(bootstrap)
        if resume is not None:
            from orchestration.cli.ingest_resume import resume_journal

            raise typer.Exit(resume_journal(settings, resume, console))
        if dead_letters:
            from cmr.kafka_io import read_topic
            from cmr.v1 import events_pb2

            letters = [events_pb2.DeadLetter.FromString(r.value)
                       for r in read_topic(settings, settings.kafka_topic_dead_letter)]
            rows = [{"stage": d.stage, "reason": d.reason, "error_type": d.error_type, "attempts": d.attempts,
                     "partition": d.partition, "offset": d.offset} for d in letters]
            if as_json:
                typer.echo(json.dumps(rows, indent=2))
            else:
                for r in rows:
                    typer.echo(f"{r['partition']}@{r['offset']}  {r['stage']:<10} {r['error_type']:<24} {r['reason']}")
                console.print(f"{len(rows)} dead letter(s) on {settings.kafka_topic_dead_letter}")
            return
        if not paths:
            console.print("[red]error:[/] give at least one study folder or zip (or --dead-letters)")
            raise typer.Exit(2)
        from kafka.errors import KafkaError

        from ingest_svc.producer import find_studies, publish_paths

        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            console.print(f"[red]error:[/] no such file or folder: {', '.join(missing)}")
            raise typer.Exit(2)
        studies = list(find_studies(paths))
        total = len(studies)
        if total == 0:
            console.print("no studies found (a study is a folder of DICOM files or series folders, or a zip)")
            raise typer.Exit(1)
        if pacs:
            from ingest_svc.orthanc import c_store

            hostport, _, aet = pacs.partition("/")
            host, _, port = hostport.rpartition(":")
            with Progress(TextColumn("C-STORE"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=console) as bar:
                task = bar.add_task("store", total=total)
                for study in studies:
                    files = sorted(f for f in study.rglob("*") if f.is_file()) if study.is_dir() else []
                    if not files:
                        console.print("a zip cannot be sent by C-STORE: unpack it first")
                        continue
                    c_store(files, host or "127.0.0.1", int(port), aet or "ANY-SCP")
                    bar.advance(task)
            console.print(f"sent {total} studies to {pacs}")
            return
        with Progress(TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console) as bar:
            task = bar.add_task("publish", total=total)
            try:
                from ingest_svc.journal import IngestJournal

                log = IngestJournal(journal) if journal else None
                try:
                    msgs = publish_paths(settings, paths, progress=lambda done, _: bar.update(task, completed=done),
                                         journal=log)
                finally:
                    if log is not None:
                        log.close()
            except KafkaError as exc:
                console.print(f"[red]error:[/] Kafka at {settings.kafka_bootstrap}: {type(exc).__name__}: {exc}"
                              + (f"; `cmr ingest --resume {journal}` publishes the rest" if journal else ""))
                raise typer.Exit(1) from exc
        if as_json:
            typer.echo(json.dumps([{"event_id": m.event_id, "study": m.study.path or m.study.uri} for m in msgs],
                                  indent=2))
        console.print(f"published {len(msgs)} studies to {settings.kafka_topic_new} on {settings.kafka_bootstrap}")

    @app.command("ingest-bridge")
    def ingest_bridge(orthanc_url: Optional[str] = typer.Option(None, help="Orthanc REST (default CMR_ORTHANC_URL)"),
                      state: Optional[Path] = typer.Option(None, help="file keeping the last change seen "
                                                           "(default <data_dir>/orthanc-bridge.json)"),
                      bootstrap: Optional[str] = typer.Option(None, help="Kafka bootstrap")) -> None:
        """Publish every study that becomes stable in Orthanc (DICOMweb URL) until Ctrl-C or SIGTERM."""
        import signal

        from ingest_svc.orthanc import OrthancBridge

        settings = _settings(bootstrap)
        state = state or settings.data_dir / "orthanc-bridge.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        bridge = OrthancBridge(settings, orthanc_url=orthanc_url, state_file=state)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: bridge.stop())
        console.print(f"bridge: {bridge.url} -> {settings.kafka_topic_new} on {settings.kafka_bootstrap} "
                      f"(studies as {bridge.dicomweb_url}/studies/...)")
        try:
            bridge.run()
        finally:
            bridge.close()
        console.print(f"stopped after publishing {bridge.published} studies")
