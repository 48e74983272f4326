// GET /v1/sessions/{id}/iova.svg: the session's IOVA space as an SVG picture (parse → compute
// the picture in the core → draw it; see src/core/iova-picture.ts for what is shown and how).
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { IovaSvgQuery, SessionParams, type IovaSvgQueryInput } from '../schemas/index.js';
import { iovaPicture } from '../src/core/iova-picture.js';
import { LEFT, RIGHT, pictureToSvg } from '../src/service/iova-svg.js';
import { SESSION_ERRORS } from './route-kit.js';

const Svg = z.string().meta({ description: 'An SVG image: the aperture as a bar, live mappings by direction and kind, reserved, rcache-held and flush-queue ranges, cached nodes, the 4 GiB line' });

export const iovaSvgPlugin: FastifyPluginAsync = async (app) => {
  app.get<{ Params: { id: string }; Querystring: IovaSvgQueryInput }>(
    '/v1/sessions/:id/iova.svg',
    {
      schema: {
        tags: ['tables'],
        operationId: 'iova_svg',
        summary: 'The IOVA space as a picture (SVG): zoom with ?start=&end=, ?width=, ?scale=log|linear',
        description:
          'Rendered on the server; below a pixel, ranges are aggregated (one rect per occupied pixel column), so a million live mappings ' +
          'stay a small image. Each drawn range is a `rect.span` with `data-lane`, `data-cat`, `data-start`, `data-end` (exclusive).',
        params: SessionParams,
        querystring: IovaSvgQuery,
        produces: ['image/svg+xml'],
        response: { 200: Svg, 400: SESSION_ERRORS[400], 404: SESSION_ERRORS[404] },
      },
    },
    async (req, reply) => {
      const s = app.store.get(req.params.id);
      const q = req.query;
      const zoomed = q.start !== undefined || q.end !== undefined;
      const scale = q.scale ?? (zoomed ? 'linear' : 'log');
      const picture = iovaPicture(s.config, s.iovaState(), { start: q.start, end: q.end, columns: q.width - LEFT - RIGHT, scale });
      const note = scale === 'log' ? 'log scale: both ends of each side of 4 GiB magnified' : 'linear scale';
      const svg = pictureToSvg(picture, {
        title: `${s.config.layout}${s.config.iommu ? '' : ' (no IOMMU)'}: ${picture.mappings} live, ${picture.drawn} in ${picture.window.start}–${picture.window.end}`,
        tooltip: `IOVA space of session ${s.id}`,
        note,
      });
      return reply.type('image/svg+xml; charset=utf-8').header('cache-control', 'no-store').send(svg);
    },
  );
};
