// Acceptance client: the official OpenTelemetry JS SDK + OTLP gRPC exporter -> the gateway.
// The compliance context travels as W3C baggage and is stamped onto spans by the
// official BaggageSpanProcessor (what a Node service would run). Prints one JSON line.
'use strict';

const grpc = require('@grpc/grpc-js');
const { context, propagation, trace } = require('@opentelemetry/api');
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
const { BaggageSpanProcessor } = require('@opentelemetry/baggage-span-processor');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');

const AUDIT_KEYS = new Set(['tenant.id', 'enduser.id', 'session.id', 'genai_audit.tool',
  'genai_audit.feature', 'genai_audit.region', 'genai_audit.data_class']);

async function main() {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${process.env.GATEWAY_TOKEN}`);
  const exporter = new OTLPTraceExporter({
    url: `http://${process.env.GATEWAY_GRPC}`,
    credentials: grpc.credentials.createInsecure(),
    metadata,
  });
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
    'genai_audit.tool': { value: 'node_support_bot' },
  });
  context.with(propagation.setBaggage(context.active(), bag), () => {
    tracer.startActiveSpan('chat gpt-4o-mini', { attributes: genai }, (span) => span.end());
  });
  // no tenant in baggage: the token's tenant applies
  const noTenant = propagation.createBaggage({ 'genai_audit.tool': { value: 'node_unattributed' } });
  context.with(propagation.setBaggage(context.active(), noTenant), () => {
    tracer.startActiveSpan('chat gpt-4o-mini', { attributes: genai }, (span) => span.end());
  });
  await provider.forceFlush();
  await provider.shutdown();
  console.log(JSON.stringify({ exported }));
}

main().catch((err) => { console.error(err); process.exit(1); });
