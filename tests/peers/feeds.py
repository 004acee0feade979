"""A local HTTP server on 127.0.0.1 serving recorded payloads in the shapes ERCOT's public
API and the Hashrate Index publish, plus the failures a real feed has."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

DATA = Path(__file__).resolve().parent / "data"


@dataclass
class Feed:
    """Routes to files; ``status`` and ``body`` overrides let a test break a route."""

    routes: dict[str, str] = field(default_factory=dict)
    broken: dict[str, tuple[int, str]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        self.hits[path] = self.hits.get(path, 0) + 1
        if path in self.broken:
            status, body = self.broken[path]
            return web.Response(status=status, text=body, content_type="text/html")
        if path not in self.routes:
            return web.Response(status=404, text="not found")
        name = self.routes[path]
        ctype = "text/csv" if name.endswith(".csv") else "application/json"
        return web.Response(text=(DATA / name).read_text(), content_type=ctype)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


ERCOT_ROUTES = {
    "/api/public-reports/np6-905-cd/spp_node_zone_hub": "np6-905-cd_spp_node_zone_hub_2026-07-14.json",
    "/reports/np6-905-cd/rt_spp_fallback.csv": "np6-905-cd_rt_spp_2026-11-01_fallback.csv",
    "/reports/np4-190-cd/dam_spp.csv": "np4-190-cd_dam_spp_2026-07-15.csv",
    "/api/public-reports/np4-190-cd/dam_stlmnt_pnt_prices": "np4-190-cd_dam_stlmnt_pnt_prices_2026-11-01_fallback.json",
    "/hi-api/hashrateindex/hashprice": "luxor_hashprice_usd_phs_1h.json",
    "/hi-api/ths/hashprice": "luxor_hashprice_usd_ths_1h.json",
}
