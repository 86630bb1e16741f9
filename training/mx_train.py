"""Train the demo SSD in the MXNet environment, as SageMaker's object-detection algorithm trains one.

Run by training.recipe through converters.mxnet_env.run_in_venv:

    python -m training.mx_train --train PREFIX --validation PREFIX --output DIR [options]

PREFIX-images.npy (uint8 [N, S, S, 3] RGB) and PREFIX-labels.npy (float32
[N, K, 5], -1 padded) come from training.data. The network is
training.network's SageMaker-structured training graph, loaded with
mx.sym.load_json and trained with mx.mod.Module (Adam or SGD with momentum,
linear warm-up then cosine decay, weight decay), its MultiBoxTarget computed by
training.multibox_targets (training.mx_target_op; `--targets mxnet` keeps
MXNet's operator). Augmentation (training.augment) is
plain numpy. Progress goes to stdout as JSON lines ({"event": "start" |
"iteration" | "epoch" | "done", ...}) for the caller's progress bar.

Output, as SageMaker leaves it: DIR/model_algo_1-symbol.json (the training
graph), DIR/model_algo_1-0000.params, DIR/hyperparams.json (string values) and
DIR/model.tar.gz holding exactly those three files.
"""
import argparse
import json
import math
import os
import sys
import tarfile
import time

import numpy as np

from training.augment import augment_batch, plain_batch
from training.network import VARIANTS, anchor_summary, ssd_symbol

NAME = "model_algo_1"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.mx_train")
    p.add_argument("--train", required=True, help="prefix of the training arrays")
    p.add_argument("--validation", default=None, help="prefix of the validation arrays")
    p.add_argument("--output", required=True)
    p.add_argument("--class-names", required=True, help="comma-separated, in class_id order")
    p.add_argument("--network", choices=sorted(VARIANTS), default="small", help="body variant (training.network)")
    p.add_argument("--image-shape", type=int, default=256, help="input height (and width, unless --image-width)")
    p.add_argument("--image-width", type=int, default=0, help="input width when it is not --image-shape (0: square)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--max-iterations", type=int, default=0, help="stop after this many iterations (0: no limit)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="adam")
    p.add_argument("--learning-rate", type=float, default=0.002)
    p.add_argument("--warmup", type=int, default=300, help="warm-up iterations")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--crop-probability", type=float, default=0.5)
    p.add_argument("--devices", type=int, default=os.cpu_count() or 2,
                   help="CPU contexts the batch is split over (default: one per core); with OMP_NUM_THREADS=1 and "
                   "MXNET_CPU_WORKER_NTHREADS=cores each keeps one core busy, so single-threaded operators "
                   "(MultiBoxTarget) run side by side")
    p.add_argument("--targets", choices=("numpy", "mxnet"), default="numpy",
                   help="who computes the SSD training targets: training/multibox_targets.py (the same outputs, ~3x "
                   "faster) or MXNet's MultiBoxTarget operator; the saved graph is SageMaker's either way")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--validate-every", type=int, default=0, help="validation mAP every N epochs (0: at the end only)")
    p.add_argument("--deadline", type=float, default=0,
                   help="time budget in seconds: the learning-rate schedule anneals over the larger of the iteration and "
                   "time shares, and training stops when either is used up (0: iterations only)")
    return p.parse_args(argv)


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def make_initializer(mx):
    class Initializer(mx.init.Xavier):
        """Xavier (He-style magnitude) for convolutions; BatchNorm statistics start at 0 / 1, bn_data's at
        typical road-image pixel statistics so the first iterations see normalised input."""

        def _init_weight(self, name, arr):
            if "_pred_conv" in name:  # prediction heads start small, so the first losses are moderate
                arr[:] = mx.nd.random.normal(0, 0.01, shape=arr.shape)
            else:
                super()._init_weight(name, arr)

        def _init_default(self, name, arr):
            if name == "bn_data_moving_mean":
                arr[:] = 110.0
            elif name == "bn_data_moving_var":
                arr[:] = 60.0 ** 2
            elif name.endswith("_moving_mean"):
                arr[:] = 0.0
            elif name.endswith("_moving_var"):
                arr[:] = 1.0
            else:
                raise ValueError("no initialiser for " + name)

    return Initializer(rnd_type="gaussian", factor_type="in", magnitude=2)


def make_schedule(mx, base_lr, total, warmup, deadline=0.0, started=None):
    """Linear warm-up, then cosine decay to 0.5% of base_lr over the run's progress: the share of the iterations
    done or, with a deadline (seconds from `started`), of the time used, whichever is larger. So a slower
    machine still anneals fully and stops in time, and a fast one runs every iteration."""
    final = base_lr * 0.005

    class Schedule(mx.lr_scheduler.LRScheduler):
        def progress(self, num_update):
            done = num_update / float(total)
            if deadline:
                done = max(done, (time.time() - started) / deadline)
            return min(1.0, done)

        def __call__(self, num_update):
            ramp = min(1.0, 0.02 + 0.98 * num_update / float(warmup))
            return ramp * (final + (base_lr - final) * (1 + math.cos(math.pi * self.progress(num_update))) / 2)

    return Schedule(base_lr)


def batch_losses(outputs):
    """(softmax cross-entropy over the sampled anchors, smooth-L1 per positive anchor) from the training outputs."""
    cls_prob, loc_loss, cls_label = (o.asnumpy() for o in outputs[:3])
    label = cls_label.astype(np.int64)
    valid = label >= 0
    picked = np.take_along_axis(cls_prob, np.maximum(label, 0)[:, None, :], axis=1)[:, 0]
    ce = float(-np.log(np.maximum(picked[valid], 1e-12)).mean()) if valid.any() else 0.0
    positives = max(1, int((label > 0).sum()))
    return ce, float(loc_loss.sum() / positives)


def voc_ap(recall, precision):
    """Area under the interpolated precision-recall curve (VOC 2010+ all-point)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def iou(box, boxes):
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return inter / np.maximum(union, 1e-12)


def average_precisions(detections, labels, num_classes, threshold=0.5):
    """Per-class AP@threshold; detections [N, D, 6] MultiBoxDetection rows, labels [N, K, 5] normalised."""
    aps = []
    for c in range(num_classes):
        found, total = [], 0
        for image_dets, image_labels in zip(detections, labels):
            gt = image_labels[image_labels[:, 0] == c][:, 1:]
            total += len(gt)
            used = np.zeros(len(gt), bool)
            dets = image_dets[image_dets[:, 0] == c]
            for det in dets[np.argsort(-dets[:, 1])]:
                overlaps = iou(det[2:], gt) if len(gt) else np.zeros(0)
                best = int(np.argmax(overlaps)) if len(gt) else -1
                hit = best >= 0 and overlaps[best] >= threshold and not used[best]
                if hit:
                    used[best] = True
                found.append((det[1], hit))
        if total == 0:
            continue
        found.sort(key=lambda item: -item[0])
        hits = np.array([h for _, h in found], float)
        tp = np.cumsum(hits)
        precision = tp / np.maximum(np.arange(1, len(hits) + 1), 1)
        aps.append(voc_ap(tp / total, precision) if len(hits) else 0.0)
    return aps


def detect(mx, module, images, batch_size):
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = plain_batch(images[start:start + batch_size])
        padded = len(chunk)
        if padded < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - padded,) + chunk.shape[1:], np.float32)])
        module.forward(mx.io.DataBatch([mx.nd.array(chunk)]), is_train=False)
        outputs.append(module.get_outputs()[0].asnumpy()[:padded])
    return np.concatenate(outputs)


def hyperparams(args, num_classes, num_samples, epochs_run):
    """hyperparams.json as SageMaker writes it: every value a string."""
    values = {
        "base_network": "roadedge-resnet-" + args.network, "use_pretrained_model": "0", "num_classes": num_classes,
        "num_training_samples": num_samples, "image_shape": args.image_shape, "mini_batch_size": args.batch_size,
        "epochs": epochs_run, "learning_rate": args.learning_rate, "lr_scheduler": "cosine",
        "warmup_iterations": args.warmup, "optimizer": args.optimizer, "momentum": args.momentum,
        "weight_decay": args.weight_decay, "overlap_threshold": 0.5, "nms_threshold": 0.45,
        "label_width": 350, "anchors": json.dumps(anchor_summary(args.network)),
        "class_names": json.dumps(args.class_names.split(",")), "seed": args.seed,
    }
    if args.image_width and args.image_width != args.image_shape:  # SageMaker's image_shape is square: the height
        values["image_width"] = args.image_width
    return {key: str(value) for key, value in values.items()}


def save_artifacts(mx, module, graph, output, hyper):
    """SageMaker's three files and model.tar.gz with exactly them; returns the tarball path."""
    os.makedirs(output, exist_ok=True)
    arg_params, aux_params = module.get_params()
    saved = {"arg:" + k: v for k, v in arg_params.items()}
    saved.update({"aux:" + k: v for k, v in aux_params.items()})
    files = [NAME + "-symbol.json", NAME + "-0000.params", "hyperparams.json"]
    with open(os.path.join(output, files[0]), "w", encoding="utf-8") as handle:
        handle.write(graph.to_json())
    mx.nd.save(os.path.join(output, files[1]), saved)
    with open(os.path.join(output, files[2]), "w", encoding="utf-8") as handle:
        json.dump(hyper, handle, indent=2, sort_keys=True)
    tarball = os.path.join(output, "model.tar.gz")
    with tarfile.open(tarball + ".tmp", "w:gz") as archive:
        for name in files:
            archive.add(os.path.join(output, name), arcname=name)
    os.replace(tarball + ".tmp", tarball)
    return tarball


def main(argv=None):
    args = parse_args(argv)
    import mxnet as mx

    from converters.ssd_deploy import to_deploy

    started = time.time()
    rng = np.random.default_rng(args.seed)
    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    names = args.class_names.split(",")
    num_classes = len(names)
    images, labels = np.load(args.train + "-images.npy"), np.load(args.train + "-labels.npy")
    height, width = args.image_shape, args.image_width or args.image_shape
    size, batch = (width, height), min(args.batch_size, len(images))
    devices = max(1, min(args.devices, batch))
    batch -= batch % devices
    graph = ssd_symbol(num_classes, args.network)
    trained = graph.to_json()
    if args.targets == "numpy":
        from training.mx_target_op import register, swap_targets

        register(mx)
        trained = swap_targets(trained)
    training = mx.sym.load_json(trained)
    # the MultiBoxDetection under det_out has no gradient (grad_scale 0): leave it out of the training pass
    trainer = mx.mod.Module(mx.sym.Group([training[0], training[1], training[2]]), data_names=["data"],
                            label_names=["label"], context=[mx.cpu(i) for i in range(devices)])
    label_rows = labels.shape[1]  # MultiBoxTarget's time grows with the label rows: no more than the data needs
    trainer.bind(data_shapes=[("data", (batch, 3, height, width))], label_shapes=[("label", (batch, label_rows, 5))])
    trainer.init_params(make_initializer(mx))
    per_epoch = len(images) // batch
    total = args.epochs * per_epoch
    if args.max_iterations:
        total = min(total, args.max_iterations)
    schedule = make_schedule(mx, args.learning_rate, total, min(args.warmup, max(1, total // 5)), args.deadline,
                             started)
    options = {"learning_rate": args.learning_rate, "wd": args.weight_decay, "lr_scheduler": schedule,
               "clip_gradient": 10.0}
    if args.optimizer == "sgd":
        options["momentum"] = args.momentum
    trainer.init_optimizer(optimizer=args.optimizer, optimizer_params=options)
    emit("start", iterations=total, per_epoch=per_epoch, images=len(images), batch_size=batch, image_shape=[height, width])

    def validation_map():
        if not args.validation:
            return None
        val_images = np.load(args.validation + "-images.npy")
        val_labels = np.load(args.validation + "-labels.npy")
        deploy = mx.sym.load_json(to_deploy(graph).to_json())
        tester = mx.mod.Module(deploy, data_names=["data"], label_names=None, context=mx.cpu())
        tester.bind(data_shapes=[("data", (batch, 3, height, width))], for_training=False)
        arg_params, aux_params = trainer.get_params()
        tester.set_params(arg_params, aux_params, allow_missing=False, allow_extra=True)
        aps = average_precisions(detect(mx, tester, val_images, batch), val_labels, num_classes)
        return {"map": float(np.mean(aps)) if aps else 0.0, "ap": aps}

    iteration, epoch, smoothed, stopped = 0, 0, None, False
    while iteration < total and not stopped:
        order = rng.permutation(len(images))
        for start in range(0, per_epoch * batch, batch):
            index = np.sort(order[start:start + batch])
            data, label = augment_batch(images[index], labels[index], rng, size, crop_p=args.crop_probability,
                                        max_rows=label_rows)
            trainer.forward(mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(label)]), is_train=True)
            trainer.backward()
            trainer.update()
            iteration += 1
            if iteration % args.log_every == 0 or iteration == total:
                ce, l1 = batch_losses(trainer.get_outputs())
                smoothed = (ce, l1) if smoothed is None else tuple(0.7 * s + 0.3 * v for s, v in zip(smoothed, (ce, l1)))
                emit("iteration", iteration=iteration, epoch=epoch + 1, cross_entropy=round(smoothed[0], 4),
                     smooth_l1=round(smoothed[1], 4), lr=float(schedule(iteration)),
                     progress=round(schedule.progress(iteration), 4), seconds=round(time.time() - started, 1))
            if schedule.progress(iteration) >= 1.0:
                stopped = iteration < total
                break
        epoch += 1
        if args.validate_every and epoch % args.validate_every == 0 and iteration < total and not stopped:
            emit("epoch", epoch=epoch, validation=validation_map(), seconds=round(time.time() - started, 1))
    validation = validation_map()
    emit("epoch", epoch=epoch, validation=validation, seconds=round(time.time() - started, 1))
    tarball = save_artifacts(mx, trainer, graph, args.output, hyperparams(args, num_classes, len(images), epoch))
    emit("done", iterations=iteration, epochs=epoch, deadline_hit=stopped, model=tarball,
         validation_map=validation["map"] if validation else None, seconds=round(time.time() - started, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
