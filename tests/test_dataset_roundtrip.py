"""synth -> dataset convert -> dataset upload (moto S3): the whole data path a user walks."""
import json
import os

import moto

from converters.s3_upload import make_client
from roadedge.cli import main


def test_synth_convert_upload_round_trip(tmp_path, aws_env, capsys):
    voc, converted = tmp_path / "voc", tmp_path / "sagemaker"
    assert main(["synth", str(voc), "--count", "20", "--seed", "11", "--size", "320x240"]) == 0
    assert main(["dataset", "convert", str(voc), str(converted), "--classes", "synth", "--seed", "3",
                 "--validation-fraction", "0.25", "--empty", "keep"]) == 0

    train = sorted(os.listdir(converted / "train"))
    validation = sorted(os.listdir(converted / "validation"))
    assert len(train) + len(validation) == 20 and len(validation) == 5
    # every rendered object arrives with its class id and box, in the split it was assigned to
    rendered = 0
    for split, names in (("train", train), ("validation", validation)):
        for name in names:
            stem = os.path.splitext(name)[0]
            annotation = json.loads((converted / (split + "_annotation") / (stem + ".json")).read_text())
            assert annotation["image_size"] == [{"width": 320, "height": 240, "depth": 3}]
            for box in annotation["annotations"]:
                assert 0 <= box["class_id"] < 6
                assert box["left"] >= 0 and box["left"] + box["width"] <= 320
                assert box["top"] >= 0 and box["top"] + box["height"] <= 240
            rendered += len(annotation["annotations"])
    xml_objects = sum((voc / "Annotations" / f).read_text().count("<object>") for f in os.listdir(voc / "Annotations"))
    assert rendered == xml_objects > 0
    hyper = json.loads((converted / "hyperparameters.json").read_text())
    assert hyper == {"num_classes": "6", "num_training_samples": "15", "image_shape": "300"}

    with moto.mock_aws():
        client = make_client()
        client.create_bucket(Bucket="road-crew")
        assert main(["dataset", "upload", str(converted), "s3://road-crew/rdd/v1"]) == 0
        keys = {obj["Key"] for obj in client.list_objects_v2(Bucket="road-crew")["Contents"]}
        expected = {"rdd/v1/hyperparameters.json", "rdd/v1/summary.json"}
        for channel in ("train", "validation", "train_annotation", "validation_annotation"):
            expected |= {"rdd/v1/{}/{}".format(channel, name) for name in os.listdir(converted / channel)}
        assert keys == expected
        body = client.get_object(Bucket="road-crew", Key="rdd/v1/train/" + train[0])["Body"].read()
        assert body == (converted / "train" / train[0]).read_bytes()
        capsys.readouterr()
        assert main(["dataset", "upload", str(converted), "s3://road-crew/rdd/v1"]) == 0
        assert "uploaded 0 files (0 bytes), skipped {} unchanged".format(len(expected)) in capsys.readouterr().out
