"""Installs crn_tf: `pip install -e .` (add `[test]` for the test suite, `[onnx]` for `crn-export --onnx`)."""
from setuptools import find_packages, setup

setup(
    name="crn_tf",
    version="0.1.0",
    description="Cascaded Refinement Networks (Chen & Koltun, ICCV 2017) in TensorFlow 2 / Keras 3",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["crn_tf", "crn_tf.*"]),
    install_requires=["tensorflow>=2.16", "numpy", "scipy", "pillow"],
    extras_require={
        # tf2onnx converts the serving function to ONNX (crn-export --onnx); onnxruntime runs it.
        "onnx": ["tf2onnx>=1.17", "onnxruntime"],
        "test": ["pytest", "selenium", "tf2onnx>=1.17", "onnxruntime"],
    },
    entry_points={
        "console_scripts": [
            "crn-train=crn_tf.training.cli:main",
            "crn-demo=crn_tf.demo:main",
            "crn-export=crn_tf.export:main",
            "crn-evaluate=crn_tf.evaluate.__main__:main",
            "crn-segmenter=crn_tf.evaluate.segmenter.__main__:main",
            "crn-download=crn_tf.weights.download:main",
        ]
    },
)
