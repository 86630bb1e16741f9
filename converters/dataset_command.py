"""`roadedge dataset ...`: convert VOC XML to SageMaker's layout, convert a segmentation tree, upload to S3."""
import argparse

from roadedge.core.commands import lazy_handler


def register(subparsers):
    dataset = subparsers.add_parser(
        "dataset",
        help="convert and upload training data sets",
        description="Convert labelImg / RDD VOC XML data to SageMaker's object-detection layout, "
        "convert a Pascal VOC segmentation tree, and upload a converted data set to S3.",
    )
    commands = dataset.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND")
    commands.required = True
    _register_convert(commands)
    _register_convert_seg(commands)
    _register_upload(commands)


def _register_convert(commands):
    p = commands.add_parser(
        "convert",
        help="VOC XML (labelImg / RDD) -> SageMaker object-detection channels",
        description="Validate every VOC XML file, split reproducibly (stratified by class) and write the "
        "four SageMaker channels train/, validation/, train_annotation/, validation_annotation/, "
        "plus summary.json and hyperparameters.json. Exit 2, writing nothing, on any problem.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("voc_dir", metavar="VOC_DIR",
                   help="folder with images + XML together, or JPEGImages/ + Annotations/ (searched recursively)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (created atomically)")
    p.add_argument("--classes", default=None,
                   help="class map: comma-separated codes (D00,D10,...), a named map (rdd2018, rdd2020, synth) "
                   "or a file (one code per line, or a JSON list); default: rdd2018")
    p.add_argument("--unknown", choices=("error", "skip"), default="error",
                   help="what to do with an object whose class is not in the class map (after --map)")
    p.add_argument("--map", dest="remap", action="append", default=[], metavar="SRC=DST",
                   help="rename a class before lookup, e.g. --map D30=D40 (repeatable)")
    p.add_argument("--validation-fraction", type=float, default=0.3, help="share of images for validation")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.add_argument("--empty", choices=("drop", "keep"), default="drop",
                   help="images without objects: drop them (SageMaker's MXNet detector rejects images with no "
                   "annotation) or keep them (split like the others, as their own stratum)")
    p.add_argument("--skip-difficult", action="store_true", help="leave out objects marked difficult")
    p.add_argument("--clip", action="store_true", help="clip boxes that leave the image (with a warning) instead of failing")
    p.add_argument("--lst", action="store_true", help="also write im2rec train.lst / validation.lst for RecordIO")
    p.add_argument("--link", action="store_true", help="hard-link images instead of copying them (same file system)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    p.set_defaults(handler=lazy_handler("converters.sagemaker_od", "convert_command"))


def _register_convert_seg(commands):
    p = commands.add_parser(
        "convert-seg",
        help="Pascal VOC 2012 segmentation tree -> SageMaker semantic-segmentation channels",
        description="Read ImageSets/Segmentation/train.txt and val.txt, JPEGImages/ and SegmentationClass/ "
        "(palette or grayscale PNG class indices, 255 = ignore), check every mask against its image and the "
        "class list, and write train/, validation/, train_annotation/, validation_annotation/ and "
        "label_map/train_label_map.json. Exit 2, writing nothing, on any problem.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("voc_root", metavar="VOC_ROOT")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--classes", default=None,
                   help="class names in index order, comma-separated or a file (one per line); "
                   "default: VOC_ROOT/labels.txt if there is one, else the 21 Pascal VOC classes")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    p.set_defaults(handler=lazy_handler("converters.segmentation", "convert_seg_command"))


def _register_upload(commands):
    p = commands.add_parser(
        "upload",
        help="upload a converted data set's channels to S3",
        description="Upload the channel folders of a converted data set under s3://bucket/prefix/, skipping "
        "objects already there with the same size and checksum, retrying failed requests.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="a folder written by `roadedge dataset convert` or `convert-seg`")
    p.add_argument("s3_uri", metavar="S3_URI", help="s3://bucket/prefix")
    p.add_argument("--region", default=None, help="AWS region (default: from the AWS configuration)")
    p.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint, e.g. a local test server")
    p.add_argument("--retries", type=int, default=5,
                   help="retries per failed request, after the first attempt (botocore standard retry mode)")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded and skipped")
    p.set_defaults(handler=lazy_handler("converters.s3_upload", "upload_command"))

