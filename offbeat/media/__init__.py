"""The outside world's audio and models: decoding files (libsndfile, ffmpeg) and Spleeter separation with its
checkpoints. Unlike `offbeat.dsp`, these touch files, subprocesses and TensorFlow."""
