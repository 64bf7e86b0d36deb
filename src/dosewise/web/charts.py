"""Chart specs built in Python: Vega-Lite dictionaries (drawn in the page by the vendored
vega-embed, as SVG) and the flow of re-offered doses as an SVG drawn here.

Every chart in the dashboard also has a table of the same rows beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from dosewise.web.views import Flow

__all__ = ["deaths_chart", "map_chart", "sankey_svg", "status_chart", "supply_chart"]

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"  # an identifier only: never fetched
STATUS_COLOURS = {"offered": "#4c78a8", "accepted": "#54a24b", "declined": "#e45756", "lapsed": "#f58518",
                  "shipped": "#72b7b2", "delivered": "#2f6f3a"}
PART_COLOURS = {"accepted": "#54a24b", "open": "#4c78a8", "pool": "#bab0ac", "expired": "#e45756",
                "buffer": "#9d755d"}
_FONT = {"font": "DejaVu Sans, Liberation Sans, Arial, sans-serif"}


def _base(title: str, description: str) -> dict[str, Any]:
    return {"$schema": SCHEMA, "title": title, "description": description,
            "config": {**_FONT, "view": {"stroke": None}}, "width": "container",
            "autosize": {"type": "fit-x", "contains": "padding"}}


def supply_chart(lots: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each lot's doses by where they are now (accepted, on open offer, pool, expired, buffer)."""
    values = [{"lot": r["lot"], "part": part, "doses": r[part]} for r in lots for part in PART_COLOURS]
    return {**_base("Doses by lot and where they are", "Stacked bars: each lot's supply split into accepted, "
                    "open offers, pool, expired and buffer."),
            "height": {"step": 28}, "data": {"values": values}, "mark": {"type": "bar"},
            "encoding": {
                "y": {"field": "lot", "type": "nominal", "title": None},
                "x": {"field": "doses", "type": "quantitative", "title": "doses", "axis": {"format": "~s"}},
                "color": {"field": "part", "type": "nominal", "title": None,
                          "scale": {"domain": list(PART_COLOURS), "range": list(PART_COLOURS.values())},
                          "legend": {"orient": "bottom"}},
                "order": {"field": "part", "sort": "ascending"},
                "tooltip": [{"field": "lot"}, {"field": "part"}, {"field": "doses", "format": ","}],
                "description": {"field": "part"},
            }}


def status_chart(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Doses by offer status."""
    return {**_base("Doses by offer status", "Bars: doses of the round's offers, by status."),
            "height": 160, "data": {"values": list(rows)}, "mark": {"type": "bar"},
            "encoding": {
                "x": {"field": "status", "type": "nominal", "sort": list(STATUS_COLOURS), "title": None,
                      "axis": {"labelAngle": 0}},
                "y": {"field": "doses", "type": "quantitative", "title": "doses", "axis": {"format": "~s"}},
                "color": {"field": "status", "type": "nominal", "legend": None,
                          "scale": {"domain": list(STATUS_COLOURS), "range": list(STATUS_COLOURS.values())}},
                "tooltip": [{"field": "status"}, {"field": "offers", "format": ","}, {"field": "doses", "format": ","}],
            }}


def map_chart(rows: Sequence[dict[str, Any]], atlas_url: str) -> dict[str, Any]:
    """Doses per 100 people on a world map: countries as shapes from the vendored atlas, economies
    too small for it as dots at their centroid; countries outside the round in grey."""
    values = [{k: r[k] for k in ("key", "code", "name", "per100", "doses", "population")} for r in rows]
    dots = [{k: r[k] for k in ("code", "name", "per100", "doses", "lon", "lat")} for r in rows
            if not r["drawn"] and r["lon"] is not None]
    shown = sorted(r["per100"] for r in rows if r["per100"] is not None)
    low = shown[0] if shown else 0.0
    high = shown[int(0.95 * (len(shown) - 1))] if shown else 1.0
    colour = {"field": "per100", "type": "quantitative", "title": "doses per 100 people",
              "scale": {"scheme": "blues", "domain": [round(low, 1), round(max(high, low + 0.1), 1)], "clamp": True},
              "legend": {"orient": "bottom-left", "format": ".1f"}}
    tooltip = [{"field": "name", "title": "participant"},
               {"field": "per100", "title": "doses per 100", "format": ".2f"}, {"field": "doses", "format": ","}]
    atlas = {"url": atlas_url, "format": {"type": "topojson", "feature": "countries"}}
    return {
        "$schema": SCHEMA, "title": "Doses per 100 people (held and on open offer)",
        "description": "World map: participants shaded by doses per 100 people; small economies as dots.",
        "config": {**_FONT, "view": {"stroke": None}},
        "width": "container", "height": 420, "autosize": {"type": "fit-x", "contains": "padding"},
        "projection": {"type": "equalEarth"},
        "layer": [
            {"data": atlas, "mark": {"type": "geoshape", "fill": "#e4e4e4", "stroke": "#ffffff", "strokeWidth": 0.4}},
            {"data": atlas,
             "transform": [
                 {"calculate": "datum.id ? datum.id : datum.properties.name", "as": "key"},
                 {"lookup": "key", "from": {"data": {"values": values}, "key": "key",
                                            "fields": ["code", "name", "per100", "doses"]}},
                 {"filter": "datum.per100 != null"},
             ],
             "mark": {"type": "geoshape", "stroke": "#ffffff", "strokeWidth": 0.4},
             "encoding": {"color": colour, "tooltip": tooltip, "description": {"field": "name"}}},
            {"data": {"values": dots}, "mark": {"type": "circle", "size": 60, "stroke": "#333", "strokeWidth": 0.6,
                                                "opacity": 1},
             "encoding": {"longitude": {"field": "lon", "type": "quantitative"},
                          "latitude": {"field": "lat", "type": "quantitative"},
                          "color": {**colour, "legend": None}, "tooltip": tooltip,
                          "description": {"field": "name"}}},
        ],
    }


def deaths_chart(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Deaths averted per policy (or per recorded allocation)."""
    return {**_base("Deaths averted by each policy", "Bars: deaths averted per policy, from the impact model."),
            "height": {"step": 26}, "data": {"values": list(rows)}, "mark": {"type": "bar", "color": "#4c78a8"},
            "encoding": {
                "y": {"field": "policy", "type": "nominal", "sort": "-x", "title": None},
                "x": {"field": "deaths_averted", "type": "quantitative", "title": "deaths averted",
                      "axis": {"format": "~s"}},
                "tooltip": [{"field": "policy"}, {"field": "deaths_averted", "format": ",.0f"}],
            }}


def sankey_svg(flows: Sequence[Flow], *, width: int = 760) -> str:
    """Declined and lapsed doses (left) through each pass's pool (middle) to new recipients (right),
    as SVG markup. Band widths are proportional to doses within each pass; every text is escaped."""
    if not flows:
        return ""
    gap, min_h, col_w = 6, 3, 12
    rows_h = [max(len(f.sources), len(f.targets), 1) * 26 + 30 for f in flows]
    height = sum(rows_h) + 10
    x_left, x_mid, x_right = 190, width // 2 - col_w // 2, width - 200
    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-labelledby="sankey-title" class="sankey" style="max-width:{width}px">',
        '<title id="sankey-title">Flow of declined and lapsed doses to their new recipients</title>',
    ]
    y0 = 5
    for flow, block in zip(flows, rows_h, strict=True):
        total = max(flow.total, 1)
        usable = block - 30 - gap * (max(len(flow.sources), len(flow.targets)) - 1)
        scale = max(usable, 10) / total
        parts.append(f'<text x="{x_mid + col_w // 2}" y="{y0 + 12}" text-anchor="middle" class="sk-head">'
                     f'{escape(flow.lot)} · pass {flow.pass_} on {escape(flow.on)} · {flow.pool:,} doses</text>')
        top = y0 + 20
        mid_h = max(flow.total * scale, min_h)
        parts.append(f'<rect x="{x_mid}" y="{top}" width="{col_w}" height="{mid_h:.1f}" class="sk-pool"/>')
        mid_in = top
        y = top
        for s in flow.sources:
            h = max(s["doses"] * scale, min_h)
            parts.append(f'<rect x="{x_left}" y="{y:.1f}" width="{col_w}" height="{h:.1f}" '
                         f'class="sk-{escape(s["status"])}"/>')
            parts.append(_band(x_left + col_w, y, x_mid, mid_in, h, s["status"]))
            parts.append(f'<text x="{x_left - 6}" y="{y + h / 2 + 4:.1f}" text-anchor="end">'
                         f'{escape(s["label"])} {s["doses"]:,}</text>')
            mid_in += h
            y += h + gap
        mid_out = top
        y = top
        for t in flow.targets:
            h = max(t["doses"] * scale, min_h)
            parts.append(f'<rect x="{x_right}" y="{y:.1f}" width="{col_w}" height="{h:.1f}" '
                         f'class="sk-{escape(t["status"])}"/>')
            parts.append(_band(x_mid + col_w, mid_out, x_right, y, h, t["status"]))
            parts.append(f'<text x="{x_right + col_w + 6}" y="{y + h / 2 + 4:.1f}">'
                         f'{escape(t["label"])} {t["doses"]:,} ({escape(t["status"])})</text>')
            mid_out += h
            y += h + gap
        y0 += block
    parts.append("</svg>")
    return "".join(parts)


def _band(x0: float, y0: float, x1: float, y1: float, h: float, status: str) -> str:
    mx = (x0 + x1) / 2
    return (f'<path d="M{x0:.1f},{y0:.1f} C{mx:.1f},{y0:.1f} {mx:.1f},{y1:.1f} {x1:.1f},{y1:.1f} '
            f'L{x1:.1f},{y1 + h:.1f} C{mx:.1f},{y1 + h:.1f} {mx:.1f},{y0 + h:.1f} {x0:.1f},{y0 + h:.1f} Z" '
            f'class="sk-band sk-band-{escape(status)}"/>')
