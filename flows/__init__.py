"""The Prefect side, a package of its own beside `offbeat` in the same wheel: `analyze` (the analysis flow),
`tasks` (the registry's steps as Prefect tasks), `listen` (the Redis listener flow), `report` (what the UI shows of
a result). Only `offbeat.cli`, the tests and Prefect's deployments import this package; nothing in `offbeat` below
the command line does."""
