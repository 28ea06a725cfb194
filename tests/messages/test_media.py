"""Media library: uploads checked and cleaned, wide images resized, served publicly and inertly."""
from __future__ import annotations

import io

from PIL import Image

EVIL_SVG = (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>')
SCRIPT_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
              b'width="40" height="20" onload="alert(1)"><script>alert(2)</script>'
              b'<foreignObject><body xmlns="http://www.w3.org/1999/xhtml"><iframe src="javascript:alert(3)"/>'
              b'</body></foreignObject><rect width="10" height="10" fill="red" onclick="x()"/>'
              b'<use xlink:href="https://evil.example/x.svg#a"/></svg>')


def _png(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "navy").save(out, fmt)
    return out.getvalue()


def _upload(api, data: bytes, name: str):
    return api("POST", "/media", data={"file": (io.BytesIO(data), name)},
               content_type="multipart/form-data")


def test_png_upload_is_stored_and_listed(api):
    response = _upload(api, _png(50, 40), "logo.png")
    item = response.get_json()
    assert response.status_code == 201 and item["content_type"] == "image/png"
    assert (item["width"], item["height"]) == (50, 40) and "/p/media/" in item["url"]
    assert item["id"] in [m["id"] for m in api("GET", "/media").get_json()]


def test_wide_image_is_resized_to_the_setting(api, env):
    item = _upload(api, _png(3000, 1500, "JPEG"), "hero.jpg").get_json()
    assert item["width"] == env.settings["messages.image_max_width"] and item["height"] == 600


def test_webp_and_gif_are_accepted(api):
    assert _upload(api, _png(20, 20, "WEBP"), "a.webp").get_json()["content_type"] == "image/webp"
    assert _upload(api, _png(21, 20, "GIF"), "a.gif").get_json()["content_type"] == "image/gif"


def test_public_url_serves_the_image_with_its_type(api, client):
    item = _upload(api, _png(30, 30), "x.png").get_json()
    response = client.get(item["url"].split("127.0.0.1:8080", 1)[-1].replace("http://", ""))
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_svg_is_cleaned_of_scripts(api, client):
    item = _upload(api, SCRIPT_SVG, "icon.svg").get_json()
    body = client.get("/p/media/" + item["url"].rsplit("/", 1)[1]).get_data(as_text=True)
    for bad in ("script", "onload", "onclick", "foreignObject", "javascript", "evil.example"):
        assert bad not in body
    assert "<rect" in body and item["content_type"] == "image/svg+xml"


def test_svg_with_entities_is_refused(api):
    response = _upload(api, EVIL_SVG, "x.svg")
    assert response.status_code == 422 and "SVG" in response.get_json()["detail"]


def test_a_non_image_is_refused_naming_the_field(api):
    response = _upload(api, b"MZ\x90\x00 this is not an image", "tool.exe")
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "file"


def test_same_image_twice_is_stored_once(api):
    data = _png(33, 33)
    assert _upload(api, data, "a.png").get_json()["id"] == _upload(api, data, "b.png").get_json()["id"]


def test_unknown_media_name_is_404(client):
    assert client.get("/p/media/../secret_key").status_code == 404
    assert client.get("/p/media/nothing-here-123.png").status_code == 404


def test_delete_removes_the_file(api, client):
    item = _upload(api, _png(34, 34), "d.png").get_json()
    assert api("DELETE", f"/media/{item['id']}").status_code == 204
    assert client.get("/p/media/" + item["url"].rsplit("/", 1)[1]).status_code == 404


def _animated_gif(width: int, height: int, frames: int = 4, loop: int | None = 0) -> bytes:
    images = [Image.new("RGB", (width, height), (60 * i, 120, 200)) for i in range(frames)]
    out = io.BytesIO()
    extra = {} if loop is None else {"loop": loop}
    images[0].save(out, "GIF", save_all=True, append_images=images[1:],
                   duration=[100 * (i + 1) for i in range(frames)], **extra)
    return out.getvalue()


def _stored(client, item) -> bytes:
    return client.get("/p/media/" + item["url"].rsplit("/", 1)[1]).get_data()


def test_wide_animated_gif_is_resized_keeping_every_frame_and_its_timing(api, client, env):
    from PIL import ImageSequence

    item = _upload(api, _animated_gif(2400, 400), "banner.gif").get_json()
    stored = Image.open(io.BytesIO(_stored(client, item)))
    assert item["width"] == env.settings["messages.image_max_width"] == stored.width
    assert stored.is_animated and stored.n_frames == 4 and stored.info["loop"] == 0
    assert [f.info["duration"] for f in ImageSequence.Iterator(stored)] == [100, 200, 300, 400]
    assert item["note"] is None


def test_animation_that_plays_once_still_plays_once(api, client):
    item = _upload(api, _animated_gif(2500, 300, frames=2, loop=None), "once.gif").get_json()
    assert "loop" not in Image.open(io.BytesIO(_stored(client, item))).info


def test_animation_too_large_to_resize_is_kept_with_a_note(env):
    from altkraft_onprem.messages import media

    data = _animated_gif(1300, 1000, frames=3)
    previous = media.MAX_ANIMATION_PIXELS
    media.MAX_ANIMATION_PIXELS = 1300 * 1000 * 2          # fewer than this GIF has
    try:
        processed = media.process_image(data, "big.gif", 600)
    finally:
        media.MAX_ANIMATION_PIXELS = previous
    assert processed.data == data and processed.width == 1300
    assert "3 frames" in processed.note and "600" in processed.note


def test_oversized_svg_dimensions_are_scaled_down(api, client, env):
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg" width="99999999999999" height="50000000">'
           b'<rect width="10" height="10"/></svg>')
    item = _upload(api, svg, "huge.svg").get_json()
    body = _stored(client, item).decode()
    assert item["width"] == env.settings["messages.image_max_width"] and 1 <= item["height"] <= 10_000
    assert f'width="{item["width"]}"' in body and "viewBox=" in body and "99999999999999\"" not in body
    assert "shown at" in item["note"]


def test_svg_wider_than_the_setting_keeps_its_drawing_through_a_viewbox(api, client, env):
    assert env.settings["messages.image_max_width"] == 1200
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="2400" height="300"><rect width="10" height="10"/></svg>'
    item = _upload(api, svg, "wide.svg").get_json()
    body = _stored(client, item).decode()
    assert (item["width"], item["height"]) == (1200, 150)
    assert 'viewBox="0 0 2400 300"' in body and 'height="150"' in body


def test_small_svg_is_left_as_drawn(api):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="10" height="10"/></svg>'
    item = _upload(api, svg, "small.svg").get_json()
    assert (item["width"], item["height"], item["note"]) == (40, 20, None)
