"""One module per stage, named after it. Each declares `STAGE` (or `SINK`): name, version, parameters and the
compute function, whose parameters named after other stages are its inputs. `offbeat.pipeline.registry` lists
them in order; nothing else needs to know a stage exists."""
