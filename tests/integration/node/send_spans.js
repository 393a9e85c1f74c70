// Acceptance client: the official OpenTelemetry JS SDK + OTLP exporter -> the gateway.
// gRPC (GATEWAY_GRPC) or OTLP/HTTP (GATEWAY_HTTP, JSON, optional GATEWAY_COMPRESSION=gzip):
// the JS HTTP exporter streams its body, so Node sends it with Transfer-Encoding: chunked
// (reported as "chunked" in the output). The compliance context travels as W3C baggage and
// is stamped onto spans by the official BaggageSpanProcessor (what a Node service would
// run). Prints one JSON line.
'use strict';

const http = require('http');
const grpc = require('@grpc/grpc-js');
const { context, propagation, trace } = require('@opentelemetry/api');
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
const { BaggageSpanProcessor } = require('@opentelemetry/baggage-span-processor');
const { OTLPTraceExporter: GrpcExporter } = require('@opentelemetry/exporter-trace-otlp-grpc');
const { OTLPTraceExporter: HttpExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');

const AUDIT_KEYS = new Set(['tenant.id', 'enduser.id', 'session.id', 'genai_audit.tool',
  'genai_audit.feature', 'genai_audit.region', 'genai_audit.data_class']);

// every request the HTTP exporter sends: was its body chunked?
const chunked = [];
const request = http.request;
http.request = (...args) => {
  const req = request(...args);
  req.on('finish', () => chunked.push(req.chunkedEncoding === true
    && req.getHeader('content-length') === undefined));
  return req;
};
require('module').syncBuiltinESMExports(); // the exporter loads http with import()

function makeExporter() {
  if (process.env.GATEWAY_HTTP) {
    return new HttpExporter({
      url: `http://${process.env.GATEWAY_HTTP}/v1/traces`,
      headers: { Authorization: `Bearer ${process.env.GATEWAY_TOKEN}` },
      compression: process.env.GATEWAY_COMPRESSION || 'none',
    });
  }
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${process.env.GATEWAY_TOKEN}`);
  return new GrpcExporter({
    url: `http://${process.env.GATEWAY_GRPC}`,
    credentials: grpc.credentials.createInsecure(),
    metadata,
  });
}

async function main() {
  const tool = process.env.GATEWAY_TOOL_PREFIX || 'node';
  const exporter = makeExporter();
  let exported = 'success';
  const original = exporter.export.bind(exporter);
  exporter.export = (spans, done) => original(spans, (result) => {
    if (result.code !== 0) exported = `failed: ${result.error && result.error.message}`;
    done(result);
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'node-svc' }),
    spanProcessors: [new BaggageSpanProcessor((key) => AUDIT_KEYS.has(key)),
      new SimpleSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('node-app');
  const genai = {
    'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai',
    'gen_ai.request.model': 'gpt-4o-mini', 'gen_ai.usage.input_tokens': 12,
    'gen_ai.usage.output_tokens': 7,
    'gen_ai.input.messages': JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: 'hello from node' }] }]),
  };
  const bag = propagation.createBaggage({
    'tenant.id': { value: 'globex' }, 'enduser.id': { value: 'node-user-7' },
    'genai_audit.tool': { value: `${tool}_support_bot` },
  });
  context.with(propagation.setBaggage(context.active(), bag), () => {
    tracer.startActiveSpan('chat gpt-4o-mini', { attributes: genai }, (span) => span.end());
  });
  // no tenant in baggage: the token's tenant applies
  const noTenant = propagation.createBaggage({ 'genai_audit.tool': { value: `${tool}_unattributed` } });
  context.with(propagation.setBaggage(context.active(), noTenant), () => {
    tracer.startActiveSpan('chat gpt-4o-mini', { attributes: genai }, (span) => span.end());
  });
  await provider.forceFlush();
  await provider.shutdown();
  console.log(JSON.stringify({ exported, chunked }));
}

main().catch((err) => { console.error(err); process.exit(1); });
