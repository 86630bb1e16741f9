"""The three measurements of the runtime benchmark: `roadedge run` end to end, OpenVINO's benchmark_app, and a
plain synchronous loop in the style of the DeepLens samples."""
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

from _models import REPO, metadata

from roadedge.core.model_metadata import channel_scale

PRECISION = "f32"
PRECISIONS = ("f32", "bf16", "int8")  # int8: a quantized IR, run with the f32 hint (its quantized layers stay int8)


def hint_precision(precision):
    """The CPU plugin's INFERENCE_PRECISION_HINT for a row's precision."""
    return "f32" if precision == "int8" else precision


def e2e_config(mode, precision=PRECISION, cache_dir=None):
    """--config on top of the x86-openvino-cpu profile; publish_empty: every frame gets a timestamp."""
    backend = ["type: openvino", "precision: " + hint_precision(precision)]
    if mode == "throughput":
        backend.append("performance_hint: THROUGHPUT")
    if cache_dir:
        backend.append("cache_dir: " + json.dumps(cache_dir))
    return "pipeline: {publish_empty: true}\nbackend: {" + ", ".join(backend) + "}\n"


def e2e_command(xml, video, frames, mode, work, loop=False, precision=PRECISION, cache_dir=None):
    """The `roadedge run` argument list of one end-to-end run (after `roadedge`): JSON lines on stdout."""
    config = os.path.join(work, "e2e-{}.yaml".format(mode))
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(e2e_config(mode, precision, cache_dir))
    args = ["run", "--profile", "x86-openvino-cpu", "--config", config, "--model", xml, "--source", video,
            "--frames", str(frames), "--no-realtime", "--no-preview", "--output", "jsonl:-",
            "--summary", os.path.join(work, "e2e-summary.json"), "--quiet"]
    if mode == "throughput":
        args += ["--requests", "0"]  # the device's optimal number of requests for the THROUGHPUT hint
    return args + (["--loop"] if loop else [])


def _timestamp(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def _peak_rss_watch(pid, peak, done):
    """Keep peak[0] at the child's VmHWM (kB) until `done` is set. Its own high-water mark since exec: wait4's
    ru_maxrss is not, Linux carries the forking parent's RSS over exec, so a benchmark process grown to 500 MB made
    every later child report at least that."""
    path = "/proc/{}/status".format(pid)
    while not done.is_set():
        try:
            with open(path) as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
        except (OSError, ValueError):
            pass
        done.wait(0.02)


def run_child(argv, cwd=REPO):
    """Run argv with stdout read line by line: (stdout lines, seconds from start to the first line, seconds in all,
    the child's peak RSS in MB (its VmHWM, read every 20 ms), exit code, stderr text)."""
    import tempfile
    import threading

    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=errors)
        peak, done = [0], threading.Event()
        watch = threading.Thread(target=_peak_rss_watch, args=(child.pid, peak, done), daemon=True)
        watch.start()
        lines, first = [], None
        for line in child.stdout:
            if first is None:
                first = time.perf_counter() - started
            lines.append(line)
        child.stdout.close()
        child.wait()
        done.set()
        watch.join()
        wall = time.perf_counter() - started
        errors.seek(0)
        text = errors.read().decode(errors="replace")
    return lines, first, wall, round(peak[0] / 1024.0, 1), child.returncode, text


def run_e2e(xml, video, frames, mode, work, loop=False, precision=PRECISION, cache_dir=None):
    """One `roadedge run` in a subprocess: the summary's fps/seconds/stages/startup_seconds, plus the steady-state FPS
    between the first and the last finished frame (from the per-frame messages' timestamps; leaves out compile and
    first inference), the process's peak RSS and the wall time from its start to its first JSON line."""
    args = e2e_command(xml, video, frames, mode, work, loop, precision, cache_dir)
    if os.path.exists(os.path.join(work, "e2e-summary.json")):
        os.remove(os.path.join(work, "e2e-summary.json"))
    lines, first, wall, rss_mb, code, errors = run_child([sys.executable, "-m", "roadedge"] + args)
    if code != 0:
        raise SystemExit("roadedge {} failed:\n{}".format(" ".join(args), errors))
    with open(os.path.join(work, "e2e-summary.json"), encoding="utf-8") as handle:
        summary = json.load(handle)
    stamps = [_timestamp(json.loads(line)["ts"]) for line in lines if line.strip()]
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 and stamps[-1] > stamps[0] else None
    return {"command": "roadedge " + " ".join(args), "config": e2e_config(mode, precision, cache_dir),
            "frames": summary["frames"], "seconds": summary["seconds"],
            "fps": summary["fps"], "steady_fps": round(steady, 2) if steady else None,
            "startup_s": round(summary["seconds"] - (len(stamps) - 1) / steady, 3) if steady else None,
            "process_wall_s": round(wall, 2), "dropped": summary["dropped"], "precision": precision,
            "startup_seconds": summary.get("startup_seconds"), "first_line_s": round(first, 3) if first else None,
            "max_rss_mb": rss_mb, "cache_dir": cache_dir,
            "stages_ms": summary["stages_ms"], "detections": summary["detections"]}


def benchmark_app(xml, hint, seconds, shape=None, precision=PRECISION):
    """benchmark_app -hint HINT -infer_precision P on the CPU: FPS, latency (ms), requests and streams."""
    tool = shutil.which("benchmark_app")
    if tool is None:
        raise SystemExit("benchmark_app not found on PATH (it comes with `pip install openvino`)")
    args = [tool, "-m", xml, "-d", "CPU", "-hint", hint, "-infer_precision", hint_precision(precision), "-t", str(seconds)]
    if shape:
        args += ["-shape", shape]
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    text = result.stdout.decode(errors="replace")
    found = re.search(r"Throughput:\s+([\d.]+)\s*FPS", text)
    if result.returncode != 0 or not found:
        raise SystemExit("benchmark_app failed ({}):\n{}".format(" ".join(args), text[-3000:]))
    out = {"command": " ".join(["benchmark_app"] + args[1:]), "fps": float(found.group(1))}
    for key in ("Median", "Average", "Min", "Max"):
        match = re.search(r"{}:\s+([\d.]+)\s*ms".format(key), text)
        out[key.lower() + "_ms"] = float(match.group(1)) if match else None
    requests = re.search(r"(\d+) inference requests", text)
    out["requests"] = int(requests.group(1)) if requests else 1  # "Start inference synchronously": one request
    streams = re.search(r"NUM_STREAMS:\s+(\d+)", text)
    out["streams"] = int(streams.group(1)) if streams else None
    return out


def runtime_model(xml, work):
    """The model as `roadedge run` compiles it with `backend.preprocess: device`, saved as an IR for benchmark_app:
    add_preprocessing (BGR u8 NHWC in, colour + mean/scale + layout in OpenVINO) for the model's input size (OpenCV
    has resized the frame before), whatever the video's frame size. The default host preprocessing compiles the
    bare IR."""
    import openvino as ov

    from roadedge.core.openvino_preprocessing import add_preprocessing

    meta = metadata(xml)
    input_size = (meta["input"]["width"], meta["input"]["height"])
    path = os.path.join(work, "runtime-ir", "{}-{}-{}x{}.xml".format(
        os.path.basename(os.path.dirname(xml)), os.path.splitext(os.path.basename(xml))[0], *input_size))
    if not os.path.isfile(path) or os.path.getmtime(path) < os.path.getmtime(os.path.splitext(xml)[0] + ".bin"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        model = add_preprocessing(ov.Core().read_model(xml), meta["preprocessing"], input_size)
        ov.save_model(model, path, compress_to_fp16=False)
    return path


def video_info(video):
    import cv2

    capture = cv2.VideoCapture(video)
    info = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    capture.release()
    return info


def sync_loop(xml, video, frames, precision=PRECISION):
    """DeepLens-sample style: read -> cv2.resize -> NCHW float32 -> compiled_model(tensor) -> parse -> draw, one frame at
    a time on one thread of control; FPS over `frames` frames (the video restarts at its end) and mean ms per stage."""
    import cv2
    import numpy as np
    import openvino as ov

    from edge.processing.decoders import DetectionFilter, decode_detection_output

    meta = metadata(xml)
    width, height = int(meta["input"]["width"]), int(meta["input"]["height"])
    pre = meta["preprocessing"]
    mean = np.asarray(pre.get("mean", [0, 0, 0]), np.float32).reshape(1, 1, 3)
    scale = np.asarray(channel_scale(pre), np.float32).reshape(1, 1, 3)
    rgb = pre.get("color_order", "RGB") == "RGB"
    keep = DetectionFilter(meta["labels"], 0.5, None, 100, int(meta["output"].get("label_offset", 0)))
    started = time.perf_counter()
    compiled = ov.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": hint_precision(precision),
                                                 "PERFORMANCE_HINT": "LATENCY"})
    compile_s = time.perf_counter() - started
    capture = cv2.VideoCapture(video)
    stages = {name: 0.0 for name in ("read", "preprocess", "infer", "parse", "draw")}
    detections = 0
    begin = time.perf_counter()
    for _ in range(frames):
        t0 = time.perf_counter()
        ok, frame = capture.read()
        if not ok:
            capture.release()
            capture = cv2.VideoCapture(video)
            ok, frame = capture.read()
        t1 = time.perf_counter()
        image = cv2.resize(frame, (width, height))
        if rgb:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        tensor = ((image.astype(np.float32) - mean) * scale).transpose(2, 0, 1)[None]
        t2 = time.perf_counter()
        raw = compiled(np.ascontiguousarray(tensor))[0]
        t3 = time.perf_counter()
        found = decode_detection_output(raw, keep)
        t4 = time.perf_counter()
        h, w = frame.shape[:2]
        for det in found:
            x0, y0, x1, y1 = (int(v * s) for v, s in zip(det.box, (w, h, w, h)))
            cv2.rectangle(frame, (x0, y0), (x1, y1), (0, 0, 255), 2)
            cv2.putText(frame, "{} {:.2f}".format(det.label, det.score), (x0, max(y0 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, (0, 0, 255), 1)
        t5 = time.perf_counter()
        detections += len(found)
        for name, (a, b) in zip(stages, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
            stages[name] += (b - a) * 1000.0
    seconds = time.perf_counter() - begin
    capture.release()
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 2), "compile_s": round(compile_s, 3),
            "detections": detections, "stages_ms": {name: round(ms / frames, 3) for name, ms in stages.items()}}


def _cpu():
    """(busy jiffies of the whole machine, CPU seconds of this process and its finished children)."""
    import resource

    with open("/proc/stat", encoding="utf-8") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    ours = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ("ru_utime", "ru_stime"))
    return sum(values[:8]) - values[3] - values[4], ours


def others_during(fn, *args):
    """fn(*args) and the cores other processes kept busy meanwhile (machine busy time minus ours, per second)."""
    hz = os.sysconf("SC_CLK_TCK")
    busy0, ours0 = _cpu()
    started = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - started
    busy1, ours1 = _cpu()
    return result, round(max(0.0, ((busy1 - busy0) / hz - (ours1 - ours0)) / seconds), 2)


def quiet_run(max_wait, fn, *args):
    """fn(*args) once other load has settled (wait_quiet, up to max_wait s); its result dict gets `other_load_cores`,
    the cores other processes kept busy meanwhile."""
    wait_quiet(max_wait)
    result, others = others_during(fn, *args)
    result["other_load_cores"] = others
    return result


def wait_quiet(max_wait, threshold=0.3):
    """Wait (up to max_wait seconds) until other processes use less than `threshold` cores; returns the last reading."""
    deadline = time.time() + max_wait
    while True:
        _, busy = others_during(time.sleep, 1.0)
        if busy <= threshold or time.time() >= deadline:
            return busy
