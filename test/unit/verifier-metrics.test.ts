// The Prometheus text rendering behind the DSO's /metrics (exposition format 0.0.4): HELP/TYPE lines,
// label escaping, gauges collected at render time, and the mistakes it refuses. The HTTP endpoint is
// served for real on 127.0.0.1 and closed with a keep-alive connection still open.
import http from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startServiceHttpServer } from '../../host-tools/service/http-server.ts';
import { MetricsRegistry } from '../../host-tools/service/metrics.ts';

test('renders HELP and TYPE once per metric, then its samples, with escaped label values', () => {
  const metrics = new MetricsRegistry();
  const rejected = metrics.counter('demo_rejected_total', 'Rejections\nby "reason" \\ kind.', ['reason']);
  rejected.inc({ reason: 'bad-mac' });
  rejected.inc({ reason: 'bad-mac' }, 2);
  rejected.inc({ reason: 'say "hi"\\\n' });
  let collected = 0;
  metrics.gauge('demo_meters', 'Meters.', [], (g) => g.set(++collected));
  metrics.counter('demo_plain_total', 'Never touched.');
  assert.is(
    metrics.render(),
    [
      '# HELP demo_rejected_total Rejections\\nby "reason" \\\\ kind.',
      '# TYPE demo_rejected_total counter',
      'demo_rejected_total{reason="bad-mac"} 3',
      'demo_rejected_total{reason="say \\"hi\\"\\\\\\n"} 1',
      '# HELP demo_meters Meters.',
      '# TYPE demo_meters gauge',
      'demo_meters 1',
      '# HELP demo_plain_total Never touched.',
      '# TYPE demo_plain_total counter',
      'demo_plain_total 0',
      '',
    ].join('\n'),
  );
  assert.match(metrics.render(), /^demo_meters 2$/m);
  assert.is(rejected.get({ reason: 'bad-mac' }), 3);
});

test('refuses bad names, wrong label sets, decreasing counters and duplicate registrations', () => {
  const metrics = new MetricsRegistry();
  assert.throws(() => metrics.counter('bad-name', 'x'), /not a valid Prometheus metric name/);
  assert.throws(() => metrics.counter('ok_total', 'x', ['__reserved']), /label name/);
  const c = metrics.counter('ok_total', 'x', ['reason']);
  assert.throws(() => c.inc(), /takes the labels \{reason\}/);
  assert.throws(() => c.inc({ reason: 'a', extra: 'b' }), /takes the labels/);
  assert.throws(() => c.inc({ reason: 'a' }, -1), /can only increase/);
  assert.throws(() => metrics.gauge('ok_total', 'again'), /already registered/);
});

test('/metrics, /healthz and 404 over HTTP on 127.0.0.1; close ends keep-alive connections', async () => {
  const metrics = new MetricsRegistry();
  metrics.counter('demo_total', 'Demo.').inc();
  let healthy = true;
  const server = await startServiceHttpServer({
    name: 'DSO',
    metrics,
    health: () => (healthy ? { ok: true } : { ok: false, detail: 'registry closed' }),
  });
  let closed = false;
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const response = await fetch(`${server.url}/metrics`);
    assert.is(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.match(await response.text(), /^demo_total 1$/m);
    healthy = false;
    const health = await fetch(`${server.url}/healthz`);
    assert.is(health.status, 503);
    assert.equal(await health.json(), { ok: false, detail: 'registry closed' });
    assert.is((await fetch(`${server.url}/metrics`, { method: 'POST' })).status, 405);
    // An idle keep-alive connection must not keep close() waiting.
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      http.get(`${server.url}/healthz`, { agent }, (res) => res.resume().on('end', resolve)).on('error', reject);
    });
    await server.close();
    closed = true;
    agent.destroy();
  } finally {
    if (!closed) await server.close();
  }
});

test.run();
