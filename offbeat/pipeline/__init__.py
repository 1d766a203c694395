"""The pipeline: the stage graph (`registry`, one module per stage under `stages/`), cache keys and the runner
that reads entries back or computes them (`runner`), block streaming (`blocks`), and the result document
(`assemble`). No Prefect here: `flows` turns the registry into tasks."""
