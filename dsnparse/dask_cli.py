"""``dsnparse parse --dask ADDRESS …``: the parse command run on a Dask cluster.

The partitions of :func:`dsnparse.dask.plan` run on the cluster's workers (read, parse,
render); this process lists the inputs, then writes, in input order:

- ``-f jsonl`` / ``csv`` / ``table`` (default as for ``dsnparse parse``): the text the workers
  rendered, to ``-o FILE`` or standard output, byte for byte what ``dsnparse parse`` writes;
- ``-f parquet`` (implied by ``-o NAME.parquet``): one column per record field
  (:func:`dsnparse.dask.meta`).  ``-o DIR/`` (a name ending in ``/``, or an existing empty
  directory, or an fsspec URL ending in ``/``) is a Parquet dataset written by the workers
  themselves (``dask.dataframe.to_parquet``, one ``part.N.parquet`` per partition; the
  directory must be reachable from the workers); any other name is one Parquet file written
  by this process from the partitions as they come.

``ADDRESS`` is a scheduler address (``tcp://10.0.0.5:8786``) or ``local:N`` (``local``: one
per core): a ``LocalCluster`` of N worker processes (one thread each, no dashboard, on
127.0.0.1) started for this run and stopped after it.

Exit status as for ``dsnparse parse``; 2 also when the scheduler cannot be reached, the
cluster cannot be started, or the options cannot go together (``--db``, ``--jobs`` or
standard input with ``--dask``; ``-f parquet`` without ``--dask`` or without ``-o``).
"""
from __future__ import annotations

import logging
import os
import sys
from collections import Counter

log = logging.getLogger("dsnparse")

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


def _usage(message: str) -> int:
    print(f"dsnparse: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _is_dataset(output: str) -> bool:
    """Parquet to a directory (a dataset the workers write) rather than to one file."""
    return output.endswith("/") or os.path.isdir(output)


def local_cluster_options(n: int) -> dict:
    """Keyword arguments of ``distributed.LocalCluster`` for ``--dask local:N``: ``n``
    worker processes of one thread each, everything on 127.0.0.1, no dashboard, and the
    scheduler's HTTP server (health checks) on a free port, not on the usual 8787 (which
    another cluster of the machine may hold)."""
    return dict(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})


def connect(address: str):
    """``(client, cluster)`` for ``address``: a scheduler address, or ``local[:N]`` (a
    ``LocalCluster`` of N processes, ``cluster`` then to be closed by the caller, else
    ``None``).

    Raises:
        ValueError: ``local:N`` with N not a whole number of at least 1.
        OSError: the scheduler cannot be reached (``distributed`` raises ``OSError`` on
            a connection time-out).
    """
    from distributed import Client

    if address == "local" or address.startswith("local:"):
        from distributed import LocalCluster

        from .parallel import default_jobs

        n_text = address.partition(":")[2]
        try:
            n = int(n_text) if n_text else default_jobs()
        except ValueError:
            raise ValueError(f"--dask {address}: local:N needs a whole number of worker "
                             f"processes") from None
        if n < 1:
            raise ValueError(f"--dask {address}: at least 1 worker process")
        import dask

        # the workers' statistical profiler samples the parsing thread's stack 100 times a
        # second (one measurement: 3.3 CPU s against 2.6 without, for 3,590 messages); a
        # local run has no dashboard to show it
        dask.config.set({"distributed.worker.profile.enabled": False})
        cluster = LocalCluster(**local_cluster_options(n))
        try:
            return Client(cluster), cluster
        except BaseException:
            cluster.close()
            raise
    return Client(address, timeout="15s"), None


def cmd_parse_dask(args) -> int:
    """``dsnparse parse`` with ``--dask`` (or ``-f parquet``): see the module docstring."""
    from .cliargs import options_from_args as _options
    from .cliargs import output_is_input as _output_is_input, summary_line as _summary
    from .errors import DsnparseError
    from .output import format_for_path
    from .rules import load_packs

    fmt = args.format
    if args.dask is None:
        return _usage("-f parquet needs --dask ADDRESS (e.g. --dask local:2)")
    if getattr(args, "db", None) is not None:
        return _usage("--db cannot be used with --dask: the ledger records reports in one "
                      "process; parse with --dask to JSON Lines, or record with dsnparse "
                      "parse --db")
    if args.jobs is not None:
        return _usage("--jobs has no effect with --dask: the cluster's workers parse "
                      "(use --dask local:N for N local processes)")
    if "-" in args.paths:
        return _usage("standard input (-) cannot be read by Dask workers: save it to a file")
    if fmt is None and args.output:
        fmt = "parquet" if (args.output.endswith(".parquet") or _is_dataset(args.output)) \
            else format_for_path(args.output)
    if fmt is None:
        fmt = "table" if sys.stdout.isatty() and not args.output else "jsonl"
    if fmt == "parquet" and not args.output:
        return _usage("-f parquet needs -o FILE (one file) or -o DIR/ (a dataset)")
    opts = _options(args)
    load_packs(tuple(opts.rules))  # broken rules are found here, not on every worker
    clash = _output_is_input(args.output, args.paths) if args.output else None
    if clash:
        return _usage(f"the output {args.output} {clash}")
    if fmt == "parquet" and os.path.isdir(args.output) and os.listdir(args.output):
        return _usage(f"the output directory {args.output} is not empty: Parquet part files "
                      f"would mix with what is there")
    if args.verbose < 2:  # distributed logs its start-up and shut-down at INFO
        import distributed  # noqa: F401 - (it sets its loggers' levels when imported)

        for name in list(logging.Logger.manager.loggerDict):
            if name == "distributed" or name.startswith("distributed."):
                logging.getLogger(name).setLevel(logging.WARNING)
    try:
        client, cluster = connect(args.dask)
    except ValueError as e:
        return _usage(str(e))
    except (OSError, TimeoutError) as e:
        return _usage(f"cannot reach the Dask scheduler at {args.dask}: {e}")
    unreadable = 0

    def on_error(path, e):
        nonlocal unreadable
        unreadable += 1
        print(f"dsnparse: {e}", file=sys.stderr)

    counts: Counter = Counter()
    try:
        from .dask import plan

        parts = plan(args.paths, options=opts, fmt=None if fmt == "parquet" else fmt,
                     on_error=on_error)
        if fmt == "parquet" and _is_dataset(args.output):
            results = _parquet_dataset(client, parts, args.output)
        elif fmt == "parquet":
            results = _parquet_file(client, parts, args.output)
        else:
            results = _text(client, parts, fmt, args.output)
        for part in results:
            counts.update(part.counts)
            for w in part.warnings:
                unreadable += 1
                log.warning("%s", w)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:
        return _usage(f"writing {args.output or 'standard output'} failed: {e.strerror or e}")
    except DsnparseError:
        raise  # (a broken rule pack met by a worker: main prints it, exit 2)
    except Exception as e:  # noqa: BLE001 - a worker lost for good (KilledWorker), a
        # scheduler gone: the cluster failed, not the input; say so without a traceback
        return _usage(f"the Dask computation failed: {type(e).__name__}: {e}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if not args.quiet:
        print(_summary(counts, unreadable), file=sys.stderr)
    return EXIT_PARTIAL if unreadable else EXIT_OK


def _in_order(client, parts):
    """Compute ``parts`` on the cluster (Dask schedules them all) and yield each result in
    input order, releasing it once it has been handed over."""
    futures = client.compute(parts)
    for i in range(len(futures)):
        f = futures[i]
        futures[i] = None
        yield f.result()
        f.release()


def _text(client, parts, fmt: str, output):
    from .output import make_writer

    out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        writer = make_writer(fmt, out)   # the header (csv, table)
        done = []
        for part in _in_order(client, parts):
            out.write(part.records)
            done.append(part._replace(records=""))
        writer.close()
    finally:
        if out is not sys.stdout:
            out.close()
    return done


def _schema():
    import pyarrow as pa

    from .model import RECORD_FIELDS

    return pa.schema([(f, pa.bool_() if f == "truncated" else pa.string())
                      for f in RECORD_FIELDS])


def _parquet_file(client, parts, output: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .dask import records_frame

    schema = _schema()
    done = []
    tmp = output + ".partial"
    try:
        with pq.ParquetWriter(tmp, schema) as w:
            for part in _in_order(client, parts):
                if part.records:
                    w.write_table(pa.Table.from_pandas(records_frame(part.records),
                                                       schema=schema, preserve_index=False))
                done.append(part._replace(records=[]))
        os.replace(tmp, output)  # a reader never sees half a file
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return done


def _parquet_dataset(client, parts, output: str):
    """Each partition's task writes its own part file (``part.NNNNN.parquet``, numbered in
    input order, so a reader of the directory sees the records in input order) and sends
    back only its counters: one pass over the input."""
    import dask
    import fsspec.core

    fs, root = fsspec.core.url_to_fs(output)
    fs.makedirs(root, exist_ok=True)
    write = dask.delayed(_write_part, pure=True)
    width = max(5, len(str(len(parts))))
    tasks = [write(p, fs, f"{root.rstrip('/')}/part.{k:0{width}d}.parquet")
             for k, p in enumerate(parts)]
    return list(_in_order(client, tasks))


def _write_part(part, fs, path: str):
    """Write ``part``'s records to the Parquet file ``path`` (on the worker); its counters."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .dask import records_frame

    schema = _schema()
    table = pa.Table.from_pandas(records_frame(part.records), schema=schema,
                                 preserve_index=False)
    with fs.open(path, "wb") as f:
        pq.write_table(table, f)
    return part._replace(records=[])
