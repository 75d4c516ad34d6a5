"""Threads sharing the arena: each trains its own model and gets, bit for
bit, what a sequential run gets. (Values are dropped from every thread, so
node releases interleave with other threads' ops.)"""
import gc
import threading

import pygrad
from pygrad.workloads import train_w1, w1_model


def test_threads_training_their_own_models_match_a_sequential_run(arena_baseline):
    seeds = [11, 12, 13, 14]
    sequential = [train_w1(w1_model(pygrad, "nn", seed=s), 150) for s in seeds]
    models = [w1_model(pygrad, "nn", seed=s) for s in seeds]  # random is global: build first
    results = [None] * len(seeds)

    def work(i):
        results[i] = train_w1(models[i], 150)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(seeds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == sequential
    del models
    gc.collect()
    assert pygrad.live_nodes() == arena_baseline
