"""Distribution `roadedge`: the shared core and command line (`roadedge`), the edge runtime (`edge`), the dataset/model
converters (`converters`), the demo model's recipe (`training`) and the cloud half (`cloud`: serve, KVS to S3, the
decoding Lambda) and the deployment packagers (`packagers`: roadedge package lambda|deeplens|greengrass)."""
from setuptools import find_packages, setup

setup(
    name="roadedge",
    version="0.1.0",
    description="Edge inference runtime for road-surface damage detection (DeepLens, Raspberry Pi, OpenVINO)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.7",
    packages=find_packages(include=["roadedge", "roadedge.*", "edge", "edge.*", "converters", "converters.*", "training",
                                    "training.*", "cloud", "cloud.*", "packagers", "packagers.*",
                                    "device_profiles"]),
    package_data={"roadedge.core": ["data/*.json"],
                  "edge": ["data/*.mp4", "schemas/*.json", "console/static/*", "models/*.xml", "models/*.bin", "models/*.json",
                           "models/*.md"],
                  "device_profiles": ["*.yaml"]},
    install_requires=[
        "numpy>=1.17",
        "openvino>=2023.0",
        "opencv-python-headless>=4.5",
        "Pillow>=8",
        "tqdm>=4.40",
        "PyYAML>=5.1",
        "paho-mqtt>=2,<3",
        "prometheus-client>=0.17",
    ],
    extras_require={
        "aws": ["boto3>=1.26"],
        "cloud": ["boto3>=1.26", "av>=11"],
        "bench": ["matplotlib"],
        "kvs": ["av>=11"],
        "quantize": ["nncf>=2.14"],
        "test": ["pytest>=7", "boto3>=1.26", "moto[s3,server]>=5", "ruff", "vermin", "import-linter>=2", "pycocotools>=2.0.6",
                 "jsonschema>=4", "hypothesis>=6", "av>=11",
                 "playwright>=1.40", "nncf>=2.14"],
    },
    entry_points={"console_scripts": ["roadedge = roadedge.cli:main"]},
)
