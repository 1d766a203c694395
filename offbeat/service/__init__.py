"""The Redis side: `transport` is the one module that talks to Redis (queues, leases, locks, atomic publish);
`worker` is the job-serving loop on top of it (no Prefect: the listener flow hands it the analysis callable)."""
