"""Network.fit: µs per minibatch step of whole epochs for the tiny and small
configs (relu + SGD + MSE, float64), compiled fit against the reference's
fit and against a Python loop of compiled train_step calls over the same
batches; and scikit-learn's digits, trained by fit and by scikit-learn's
MLPClassifier with the same settings (bench/README.md, "fit")."""
import time
import warnings

import numpy as np

import cbackprop as cb

from .networks import matmul_flops_per_step
from .settings import CONFIGS, FIT_CONFIGS, FIT_DIGITS_REPEATS

DIGITS_SIZES = [64, 128, 10]


def fit_rows(args):
    """One row per config: µs per minibatch step of each way of training,
    best of a few runs, at this worker's thread count."""
    rows, samples = [], args.fit_samples
    for name in FIT_CONFIGS:
        sizes, batch = CONFIGS[name]
        rng = np.random.default_rng(args.seed)
        X = rng.standard_normal((samples, sizes[0]))
        Y = rng.standard_normal((samples, sizes[-1]))
        steps = -(-samples // batch)
        activations = ["relu"] * (len(sizes) - 2) + ["identity"]

        def network(Net):
            return Net(sizes, activations, optimizer=cb.SGD(lr=1e-4), seed=args.seed)

        compiled, reference = network(cb.Network), network(cb.reference.Network)
        looped = network(cb.Network)

        def step_loop(net=looped):
            order = np.random.default_rng(0).permutation(samples)
            X_epoch, Y_epoch = X[order], Y[order]
            for start in range(0, samples, batch):
                net.train_step(X_epoch[start:start + batch], Y_epoch[start:start + batch])

        epochs = {"fit": 5 if args.quick else 20, "reference fit": 1, "train_step loop": 2}
        ways = {"fit": lambda: compiled.fit(X, Y, epochs=epochs["fit"], batch_size=batch, seed=0),
                "reference fit": lambda: reference.fit(X, Y, epochs=1, batch_size=batch, seed=0),
                "train_step loop": lambda: [step_loop() for _ in range(epochs["train_step loop"])]}
        best = {}
        for _ in range(3):
            for way, run in ways.items():
                start = time.perf_counter()
                run()
                seconds = (time.perf_counter() - start) / (epochs[way] * steps)
                best[way] = min(best.get(way, float("inf")), seconds)
        rows.append({"config": name, "sizes": sizes, "batch": batch, "threads": args.threads[0],
                     "samples": samples,
                     **{f"{way} us": seconds * 1e6 for way, seconds in best.items()}})
    return rows


def products_seconds(sizes, samples, epochs, threads, peak_gflops):
    """What the matrix products of ``epochs`` epochs over ``samples`` rows take
    at threads x the per-core FMA peak: a floor under any fit's time (the
    products are linear in the batch, so a short last batch changes nothing)."""
    return epochs * matmul_flops_per_step(sizes, samples) / (threads * peak_gflops * 1e9)


def digits_row(args, peak_gflops=None):
    """scikit-learn's digits: [64, 128, 10] relu/softmax, cross-entropy, Adam
    (lr 1e-3), batch 32, 40 epochs, against MLPClassifier with the same
    settings; best of FIT_DIGITS_REPEATS fits each (seeds 0, 1, ...), with the
    mean test accuracy over them, and (given the per-core float64 FMA peak)
    the time of fit's products at that peak.
    None without scikit-learn."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import train_test_split
        from sklearn.neural_network import MLPClassifier
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        return None
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    epochs = 40

    def ours(seed):
        net = cb.Network(DIGITS_SIZES, ["relu", "softmax"], loss="cross_entropy",
                         optimizer=cb.Adam(lr=1e-3), seed=seed)
        net.fit(X_train, y_train, epochs=epochs, batch_size=32, seed=seed)
        return float(np.mean(net.predict(X_test).argmax(axis=1) == y_test))

    def theirs(seed):
        model = MLPClassifier(hidden_layer_sizes=(128,), activation="relu", solver="adam",
                              alpha=0, batch_size=32, learning_rate_init=1e-3, max_iter=epochs,
                              shuffle=True, tol=0, n_iter_no_change=epochs, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_train, y_train)
        return float(model.score(X_test, y_test))

    # (the products at the threads in effect: a build without OpenMP runs one)
    row = {"threads": args.threads[0], "train_samples": len(X_train), "epochs": epochs,
           "products at peak s": None if peak_gflops is None else products_seconds(
               DIGITS_SIZES, len(X_train), epochs, cb.get_num_threads(), peak_gflops)}
    for label, train in (("cbackprop", ours), ("sklearn", theirs)):
        row[f"{label} s"], row[f"{label} accuracy"] = best_time_mean_score(train,
                                                                          FIT_DIGITS_REPEATS)
    return row


def best_time_mean_score(train, repeats):
    """(fastest seconds, mean score) of ``train(seed)`` for seeds 0 .. repeats-1:
    the accuracy of the method, not that of whichever seed ran fastest."""
    seconds, scores = [], []
    for seed in range(repeats):
        start = time.perf_counter()
        scores.append(train(seed))
        seconds.append(time.perf_counter() - start)
    return min(seconds), float(np.mean(scores))


def bench_fit(args, peak_per_core=None):
    """The fit section; ``peak_per_core`` is the worker's measured FMA peak per dtype."""
    return {"configs": fit_rows(args),
            "digits": digits_row(args, (peak_per_core or {}).get("float64"))}
