"""`cmr ingest --resume JOURNAL`: after a broker restart (the embedded broker keeps queued exams in memory only),
re-publish the journal's studies that the index does not hold and that are not still waiting on the topic
(ingest_svc/journal.py, ingest_svc/queued.py)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cmr.config import Settings


def resume_journal(settings: Settings, path: Path, console: Console) -> int:
    """Exit status: 0 when everything unconfirmed was re-published, 1 when something could not be (the search
    service or Kafka unreachable, studies gone from disk), 2 for an unreadable journal."""
    import grpc
    from kafka.errors import KafkaError

    from ingest_svc.journal import PLANNED, IngestJournal, indexed_by, latest_per_study, read_journal, unconfirmed
    from ingest_svc.producer import republish
    from ingest_svc.queued import still_queued
    from search_svc.client import SearchClient

    try:
        entries = read_journal(path)
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    studies = latest_per_study(entries)
    try:
        with SearchClient(settings.search_url, settings=settings) as client:
            todo = unconfirmed(studies, indexed_by(client))
    except grpc.RpcError as exc:
        console.print(f"[red]error:[/] search service at {settings.search_url}: {exc.code().name}: {exc.details()} "
                      "(the index confirms what was ingested: start it, or set CMR_SEARCH_URL)")
        return 1
    try:
        waiting = still_queued(settings, todo)
    except (KafkaError, TimeoutError) as exc:
        console.print(f"[red]error:[/] Kafka at {settings.kafka_bootstrap}: {type(exc).__name__}: {exc} (resume "
                      "reads the topic to send only what is no longer queued: start the broker, or set "
                      "CMR_KAFKA_BOOTSTRAP)")
        return 1
    indexed = len(studies) - len(todo)
    todo = [e for e in todo if e.path not in waiting]
    unkeyed = sum(1 for e in studies if not e.study_key)
    never = sum(1 for e in todo if e.status == PLANNED)  # the run that planned them died or failed first
    console.print(f"journal {path}: {len(studies)} studies, {indexed - unkeyed} in the index, "
                  f"{len(waiting)} still queued for the worker (not sent again), "
                  f"{len(todo)} to publish" + (f" ({never} never published before)" if never else " again")
                  + (f", {unkeyed} without a readable header (dead-lettered, not re-sent)" if unkeyed else ""))
    if not todo:
        return 0
    try:
        with IngestJournal(path) as journal, Progress(TextColumn("re-publishing"), BarColumn(),
                                                      MofNCompleteColumn(), console=console) as bar:
            task = bar.add_task("republish", total=len(todo))
            published, gone = republish(settings, todo, journal,
                                        progress=lambda done, _: bar.update(task, completed=done))
    except KafkaError as exc:
        console.print(f"[red]error:[/] Kafka at {settings.kafka_bootstrap}: {type(exc).__name__}: {exc}")
        return 1
    console.print(f"re-published {published} studies to {settings.kafka_topic_new}")
    if gone:
        console.print(f"[red]{len(gone)} studies are no longer on disk[/] and were not re-published, e.g. {gone[0]}")
        return 1
    return 0
