"""`roadedge convert quantize`: registered into `roadedge convert` from the training layer, since its accuracy check is
the evaluator's (training.evaluate, training.metrics), which the converters layer may not import."""
import argparse

from roadedge.core.commands import lazy_handler


def register(subparsers):
    from converters.convert_command import add_subcommand

    p = add_subcommand(
        subparsers,
        "quantize",
        help="INT8 post-training quantisation of a detection IR (NNCF), checked against the evaluator's mAP@0.5",
        description="Quantise an OpenVINO detection IR to INT8 with NNCF's accuracy-aware post-training quantisation: "
        "calibrate on --calibration frames, measure mAP@0.5 (the metric of `roadedge eval`) of the f32 and the INT8 IR "
        "on --validation frames, and put layers back to f32 until the drop is at most --max-drop. DetectionOutput and "
        "the tensors that feed it (box offsets, class scores, priors) stay f32. Writes DIR/NAME.xml/.bin/.json; the "
        "metadata records precision INT8, the data sets and both measured mAPs. Exit 1 (nothing written) when the "
        "drop cannot be kept within --max-drop.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("ir", metavar="IR_XML", help="the f32 detection IR (NAME.xml, with NAME.bin and the NAME.json metadata)")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="output folder for NAME.xml/.bin/.json")
    p.add_argument("--calibration", default="synth", metavar="DIR|synth",
                   help="calibration frames: a folder of images, a VOC folder or a SageMaker object-detection folder "
                   "(its train channel), or synth: frames rendered by `roadedge synth`")
    p.add_argument("--validation", default="synth", metavar="DIR|synth",
                   help="labelled frames the accuracy is measured on: a VOC folder, a SageMaker object-detection folder "
                   "(its validation channel), a `roadedge synth --video` drive (each frame one image) or synth")
    p.add_argument("--calibration-size", type=int, default=300, metavar="N", help="calibration frames (a folder: its first N)")
    p.add_argument("--validation-size", type=int, default=200, metavar="N", help="validation frames (a folder: its first N)")
    p.add_argument("--calibration-seed", type=int, default=2, help="synth: seed of the calibration frames")
    p.add_argument("--validation-seed", type=int, default=12345,
                   help="synth: seed of the validation frames (12345: the bundled model card's evaluation set)")
    p.add_argument("--synth-size", default="600x600", metavar="WxH", help="synth: frame size")
    p.add_argument("--max-drop", type=float, default=0.01,
                   help="largest allowed absolute drop of mAP@0.5, f32 minus INT8 (-1..1; below 0 INT8 must beat f32)")
    p.add_argument("--max-iterations", type=int, default=None, metavar="N",
                   help="at most N groups of layers put back to f32 (default: as many as needed)")
    p.add_argument("--preset", choices=("performance", "mixed"), default="performance",
                   help="performance: symmetric weights and activations; mixed: asymmetric activations")
    p.add_argument("--ignore-unknown", action="store_true", help="leave out validation objects of unknown classes")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    p.set_defaults(handler=lazy_handler("training.quantize", "quantize_command"))
