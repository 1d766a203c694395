"""Checkpoints of Spleeter's real architectures with random weights, for proving a model path without its
published weights (the 4stems release archive cannot be downloaded on the build network)."""

from __future__ import annotations

from pathlib import Path


def random_checkpoint(model: str, folder: Path, seed: int = 0) -> Path:
    """Write a TensorFlow checkpoint of `model` (Spleeter's own configuration and graph builder, freshly
    initialized weights) into `folder`, laid out like a released one (`model.*` and `checkpoint`)."""
    import tensorflow as tf
    from spleeter.model import EstimatorSpecBuilder
    from spleeter.utils.configuration import load_configuration

    params = load_configuration(f"spleeter:{model}")
    folder.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        waveform = tf.compat.v1.placeholder(tf.float32, shape=(None, params["n_channels"]), name="waveform")
        _ = EstimatorSpecBuilder({"waveform": waveform}, params).outputs
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(session, str(folder / "model"))
    return folder
