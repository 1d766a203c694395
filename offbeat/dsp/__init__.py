"""Pure signal code: numpy arrays in, numpy arrays (or plain values) out.

Nothing in this package touches the store, Prefect, Redis or the filesystem, so every function here can be unit
tested with synthetic arrays in milliseconds. The pipeline (`offbeat.pipeline`) is what feeds it real audio.
"""
