"""The Prefect side: `analyze` (the analysis flow), `tasks` (one task per registry step, and their wiring),
`listen` (the Redis listener flow), `report` (what the UI shows of a result). Only `offbeat.cli` and
Prefect's deployments import this package; nothing below it does."""
