"""Train the demo segmentation network in the MXNet environment, saved as SageMaker's semantic segmentation saves one.

Run by training.seg_recipe in the MXNet environment:

    python -m training.mx_train_seg --train PREFIX [--validation PREFIX] --output DIR [options]

PREFIX-images.npy (uint8 [N, H, W, 3] RGB, the frames at the IR's input size)
and PREFIX-masks.npy (uint8 [N, H, W], 255 = ignore) come from
training.seg_arrays; training takes --crop-size square crops of them (SageMaker's
crop_size), validation the whole frames. The network is a GluonCV
FCN on a narrow dilated ResNetV1b (training.seg_network, GluonCV's own
blocks, output stride 8), trained with Gluon autograd: GluonCV's preprocessing,
random rescale / crop / flip / photometric jitter (training.seg_augment),
softmax cross-entropy ignoring 255 with square-root inverse-frequency class
weights, Adam with a linear warm-up and GluonCV's poly (power 0.9) decay over
the larger of the iteration and time shares (--deadline). Progress goes to
stdout as JSON lines ({"event": "start" | "iteration" | "validation" | "done", ...}).

Output, as SageMaker leaves it: DIR/model_algo-1 (Gluon `save_parameters`),
DIR/hyperparams.json (string values) and DIR/model.tar.gz holding exactly those
two files.
"""
import argparse
import json
import os
import sys
import tarfile
import time

import numpy as np

from training.evaluate_seg import confusion_matrix, scores
from training.seg_augment import augment_batch, class_weights, plain_batch

PARAMS, HYPER = "model_algo-1", "hyperparams.json"
ALGORITHM = "fcn"
# backbone variants: deep-stem widths and planes per layer (basic blocks, one per layer); the FCN head is a quarter
VARIANTS = {
    "tiny": {"stem": [16, 16, 32], "planes": [32, 64, 96, 128], "layers": [1, 1, 1, 1]},
    "small": {"stem": [16, 16, 32], "planes": [32, 64, 128, 192], "layers": [1, 1, 1, 1]},
    "base": {"stem": [24, 24, 48], "planes": [48, 96, 160, 256], "layers": [1, 1, 2, 1]},
}


def structure(variant, num_classes):
    """The training.seg_network structure of a variant."""
    v = VARIANTS[variant]
    return {"stem": list(v["stem"]), "block": "basic", "planes": list(v["planes"]), "layers": list(v["layers"]),
            "head_channels": v["planes"][3] // 4, "num_classes": num_classes}


def backbone_name(variant):
    return "resnet-" + variant


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.mx_train_seg")
    p.add_argument("--train", required=True, help="prefix of the training arrays")
    p.add_argument("--validation", default=None, help="prefix of the validation arrays")
    p.add_argument("--output", required=True)
    p.add_argument("--class-names", required=True, help="comma-separated, in class-index order")
    p.add_argument("--network", choices=sorted(VARIANTS), default="tiny")
    p.add_argument("--crop-size", type=int, default=192)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--max-iterations", type=int, default=0, help="stop after this many iterations (0: no limit)")
    p.add_argument("--learning-rate", type=float, default=0.002)
    p.add_argument("--warmup", type=int, default=100, help="warm-up iterations")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--scale-min", type=float, default=0.75)
    p.add_argument("--scale-max", type=float, default=1.5)
    p.add_argument("--class-weight-power", type=float, default=0.25,
                   help="loss weight of a class: its pixel frequency to the minus this power (0: unweighted)")
    p.add_argument("--class-weight-max", type=float, default=3.0, help="upper clip of the class weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--validate-every", type=int, default=0,
                   help="validation pixel accuracy / mIoU every N iterations (0: at the end only)")
    p.add_argument("--deadline", type=float, default=0,
                   help="time budget in seconds: the schedule decays over the larger of the iteration and time shares "
                   "and training stops when either is used up (0: iterations only)")
    return p.parse_args(argv)


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Schedule:
    """Linear warm-up, then GluonCV's poly decay (1 - progress) ** 0.9 down to 1% of the base rate; progress is the
    share of the iterations done or, with a deadline (seconds from `started`), of the time used, if larger."""

    def __init__(self, base_lr, total, warmup, deadline=0.0, started=None):
        self.base_lr, self.total, self.warmup = base_lr, max(1, total), max(1, warmup)
        self.deadline, self.started = deadline, time.time() if started is None else started

    def progress(self, iteration, now=None):
        done = iteration / float(self.total)
        if self.deadline:
            done = max(done, ((time.time() if now is None else now) - self.started) / self.deadline)
        return min(1.0, done)

    def __call__(self, iteration, now=None):
        ramp = min(1.0, 0.05 + 0.95 * iteration / float(self.warmup))
        return self.base_lr * ramp * max(0.01, (1.0 - self.progress(iteration, now)) ** 0.9)


def hyperparams(args, num_classes, num_samples, epochs_run):
    """hyperparams.json as SageMaker writes it: every value a string."""
    values = {
        "algorithm": ALGORITHM, "backbone": backbone_name(args.network), "use_pretrained_model": "False",
        "num_classes": num_classes, "crop_size": args.crop_size, "num_training_samples": num_samples,
        "mini_batch_size": args.batch_size, "epochs": epochs_run, "learning_rate": args.learning_rate,
        "optimizer": "adam", "lr_scheduler": "poly", "weight_decay": args.weight_decay, "syncbn": "False",
        "class_names": json.dumps(args.class_names.split(",")), "seed": args.seed,
        "structure": json.dumps(structure(args.network, num_classes)),
    }
    return {key: str(value) for key, value in values.items()}


def save_artifacts(net, output, hyper):
    """model_algo-1 + hyperparams.json and model.tar.gz with exactly them; returns the tarball path."""
    os.makedirs(output, exist_ok=True)
    net.save_parameters(os.path.join(output, PARAMS))
    with open(os.path.join(output, HYPER), "w", encoding="utf-8") as handle:
        json.dump(hyper, handle, indent=2, sort_keys=True)
    tarball = os.path.join(output, "model.tar.gz")
    with tarfile.open(tarball + ".tmp", "w:gz") as archive:
        for name in (HYPER, PARAMS):
            archive.add(os.path.join(output, name), arcname=name)
    os.replace(tarball + ".tmp", tarball)
    return tarball


def predict(mx, net, images, batch_size):
    """Class-index masks [N, H, W] of frames already at the network's input size."""
    out = []
    for start in range(0, len(images), batch_size):
        logits = net(mx.nd.array(plain_batch(images[start:start + batch_size])))
        out.append(logits.argmax(axis=1).asnumpy().astype(np.uint8))
    return np.concatenate(out)


def validate(mx, net, prefix, names, batch_size):
    """Pixel accuracy, mIoU over the classes in the ground truth and per-class IoU (roadedge eval's figures) on the
    validation frames at the network's input size."""
    images, masks = np.load(prefix + "-images.npy"), np.load(prefix + "-masks.npy")
    result = scores(confusion_matrix(masks, predict(mx, net, images, batch_size), len(names)), names)
    return {"pixel_accuracy": result["pixel_accuracy"], "miou": result["miou_gt"], "images": len(images),
            "iou": {c["name"]: None if c["iou"] is None else round(c["iou"], 4) for c in result["classes"]}}


def main(argv=None):
    args = parse_args(argv)
    import mxnet as mx
    from mxnet import autograd, gluon

    from training.seg_network import build_fcn

    started = time.time()
    rng = np.random.default_rng(args.seed)
    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    names = args.class_names.split(",")
    num_classes = len(names)
    images, masks = np.load(args.train + "-images.npy"), np.load(args.train + "-masks.npy")
    batch = max(1, min(args.batch_size, len(images)))
    net = build_fcn(structure(args.network, num_classes))
    net.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
    net.hybridize(static_alloc=True, static_shape=True)
    weights = class_weights(masks, num_classes, args.class_weight_power, high=args.class_weight_max) \
        if args.class_weight_power else \
        np.ones(num_classes, np.float32)
    lookup = mx.nd.array(np.concatenate([weights, np.zeros(256 - num_classes, np.float32)]))  # 255 -> weight 0
    per_epoch = max(1, len(images) // batch)
    total = args.epochs * per_epoch
    if args.max_iterations:
        total = min(total, args.max_iterations)
    schedule = Schedule(args.learning_rate, total, min(args.warmup, max(1, total // 5)), args.deadline, started)
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": schedule(0), "wd": args.weight_decay,
                                                           "clip_gradient": 5.0})
    emit("start", iterations=total, per_epoch=per_epoch, images=len(images), batch_size=batch,
         crop_size=args.crop_size, class_weights=[round(float(w), 3) for w in weights])

    iteration, epoch, smoothed, stopped = 0, 0, None, False
    while iteration < total and not stopped:
        order = rng.permutation(len(images))
        for start in range(0, per_epoch * batch, batch):
            index = np.sort(order[start:start + batch])
            data, label = augment_batch(images[index], masks[index], rng, args.crop_size,
                                        (args.scale_min, args.scale_max))
            data, label = mx.nd.array(data), mx.nd.array(label)
            pixel_weight = mx.nd.take(lookup, label)
            with autograd.record():
                log_p = mx.nd.log_softmax(net(data), axis=1)
                picked = mx.nd.pick(log_p, mx.nd.minimum(label, num_classes - 1), axis=1)
                loss = -(picked * pixel_weight).sum() / mx.nd.maximum(pixel_weight.sum(), 1e-6)
            loss.backward()
            trainer.set_learning_rate(schedule(iteration))
            trainer.step(1)
            iteration += 1
            if iteration % args.log_every == 0 or iteration == total:
                value = float(loss.asscalar())
                smoothed = value if smoothed is None else 0.7 * smoothed + 0.3 * value
                emit("iteration", iteration=iteration, epoch=epoch + 1, loss=round(smoothed, 4),
                     lr=float(schedule(iteration)), progress=round(schedule.progress(iteration), 4),
                     seconds=round(time.time() - started, 1))
            if args.validate_every and args.validation and iteration % args.validate_every == 0 and iteration < total:
                result = validate(mx, net, args.validation, names, batch)
                emit("validation", iteration=iteration, pixel_accuracy=round(result["pixel_accuracy"], 4),
                     miou=round(result["miou"], 4), seconds=round(time.time() - started, 1))
            if schedule.progress(iteration) >= 1.0:
                stopped = iteration < total
                break
        epoch += 1
    validation = validate(mx, net, args.validation, names, batch) if args.validation else None
    tarball = save_artifacts(net, args.output, hyperparams(args, num_classes, len(images), epoch))
    emit("done", iterations=iteration, epochs=epoch, deadline_hit=stopped, model=tarball, validation=validation,
         seconds=round(time.time() - started, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
