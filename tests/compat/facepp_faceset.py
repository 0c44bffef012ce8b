"""Drives our Face++-compatible FaceSet and search API with the third-party `python-facepp` client, changing
only its base URL.

usage: facepp_faceset.py API_KEY API_SECRET BASE_URL TESTDATA_DIR enrol|search  -> prints one JSON object
  enrol:  creates FaceSet `friends`, adds two Obama photos (user_id obama) and the astronaut, then searches
  search: only searches `friends` with another Obama photo and with Biden
"""
import json
import sys

from facepplib import FacePP

api_key, api_secret, base_url, photos, mode = sys.argv[1:6]
app = FacePP(api_key=api_key, api_secret=api_secret, url=base_url)
out = {}

if mode == "enrol":
    app.face_set.create(outer_id="friends", display_name="Friends")
    for name, user in [("obama.jpg", "obama"), ("obama2.jpg", "obama"), ("astronaut.png", "astronaut")]:
        for face in app.face.all(image_file=f"{photos}/{name}"):
            # The client's way to put a face in a set and name it: faceset/addface, then face/setuserid.
            face.save(outer_ids=["friends"], user_id=user)
    detail = app.face_set.get(outer_id="friends")
    out["face_count"] = detail.face_count
    out["display_name"] = detail.display_name


def best(image):
    result = app.search.get(image_file=f"{photos}/{image}", outer_id="friends")
    top = result.results[0]
    return {"user_id": top.user_id, "confidence": top.confidence, "thresholds": result.thresholds}


out["obama"] = best("obama3.jpg")
out["biden"] = best("biden.jpg")
print(json.dumps(out))
