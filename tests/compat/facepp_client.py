"""Drives our Face++-compatible API with the third-party `python-facepp` client, changing only its base URL.

usage: facepp_client.py API_KEY API_SECRET BASE_URL TESTDATA_DIR  -> prints one JSON object
"""
import json
import sys

from facepplib import FacePP

api_key, api_secret, base_url, photos = sys.argv[1:5]
app = FacePP(api_key=api_key, api_secret=api_secret, url=base_url)

image = app.image.get(image_file=f"{photos}/astronaut.png")
same = app.compare.get(image_file1=f"{photos}/obama.jpg", image_file2=f"{photos}/obama2.jpg")
different = app.compare.get(image_file1=f"{photos}/obama.jpg", image_file2=f"{photos}/biden.jpg")
print(json.dumps({
    "faces": [face.face_rectangle for face in image.faces],
    "same": {"confidence": same.confidence, "thresholds": same.thresholds},
    "different": {"confidence": different.confidence, "thresholds": different.thresholds},
}))
