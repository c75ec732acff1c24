"""The ``audit`` handler plugin: hooks around :class:`~.writer.AuditWriter`.

Settings (``[handlers.audit]``; docs/audit.md has the full reference):
``dir``, ``max_file_mb``, ``rotate_interval``, ``fsync``, ``fsync_interval``,
``checkpoint_every``, ``checkpoint_interval``, ``signing_key``,
``redact_keys``, ``hash_fields``, ``worker`` (the writer in a process of its
own, default true: :mod:`.worker`).
"""

from __future__ import annotations

from secbus import hookimpl

from .._settings import Configured, Settings
from .redact import DEFAULT_HASH_FIELDS, DEFAULT_SECRET_WORDS, Redactor
from .worker import WriterProcess
from .writer import MiB, AuditWriter


def writer_from_settings(name: str, values: dict, data_dir) -> AuditWriter:
    s = Settings(name, values)
    directory = s.path("dir", "audit", base=data_dir)
    signing_key = s.path("signing_key", None, base=data_dir)
    if signing_key:
        from .signing import Signer  # cryptography only when checkpoints are signed (~7 MB per process)
    writer = AuditWriter(
        directory,
        redactor=Redactor(s.strings("redact_keys", list(DEFAULT_SECRET_WORDS)),
                          s.strings("hash_fields", list(DEFAULT_HASH_FIELDS))),
        signer=Signer.from_file(signing_key) if signing_key else None,
        max_file_bytes=int(s.number("max_file_mb", 64, minimum=0.001) * MiB),
        rotate_interval=s.number("rotate_interval", 86400),
        fsync=s.string("fsync", "batch", choices=("batch", "interval")),
        fsync_interval=s.number("fsync_interval", 1.0),
        checkpoint_every=s.integer("checkpoint_every", 1000, minimum=1),
        checkpoint_interval=s.number("checkpoint_interval", 60),
    )
    s.boolean("worker", True)  # read by AuditHandler.startup
    s.reject_unknown()
    return writer


class AuditHandler(Configured):
    """One audit log; the broker calls these hooks from the handler's runner."""

    #: Each batch costs a round trip to the writer process and an fsync, so audit catches up
    #: in larger batches than the other handlers (a batch is this large only while audit is
    #: behind). ``[handlers.audit] batch_size`` overrides it (benchmarks/FINDINGS.md 7 and 9).
    runner_defaults = {"batch_size": 5000}

    def __init__(self) -> None:
        self.writer: AuditWriter | WriterProcess | None = None

    def configure(self, name, settings, data_dir) -> None:
        self.unopened = writer_from_settings(name, settings, data_dir)  # settings errors surface here
        self.worker = Settings(name, settings).boolean("worker", True)

    @hookimpl
    def startup(self, app) -> None:
        self.configure(app.name, app.settings, app.data_dir)
        writer = self.unopened
        if self.worker:
            process = WriterProcess(app.name, app.settings, app.data_dir)
            opened = process.start()
            self.writer = process
            where = f"{opened['directory']} (record {opened['n']}, last seq {opened['last_seq']}; writer process)"
        else:
            writer.open()
            self.writer = writer
            where = f"{writer.directory} (record {writer.n}, last seq {writer.last_seq})"
        app.logger.info("audit: writing %s", where)

    @hookimpl
    def on_events(self, stored: list[tuple]) -> None:
        # The stored rows, not dicts: the writer process decodes them itself, so the consumer
        # process neither decodes nor re-encodes events for audit (FINDINGS.md 10).
        self.writer.write_stored(stored)

    @hookimpl
    def shutdown(self) -> None:
        if self.writer is not None:
            self.writer.close()


handler = AuditHandler()
