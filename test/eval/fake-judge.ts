/**
 * A fake OpenAI-compatible /chat/completions server on 127.0.0.1 for judge tests: `answer` maps
 * each comparison prompt (with response A and B parsed out) to the judge's reply text, to an
 * HTTP error status, or to a raw body.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeJudgeRequest {
  query: string;
  a: string;
  b: string;
  content: string;
}

/** Answer text, an HTTP error status, or a raw 200 body (e.g. not JSON). */
export type FakeJudgeReply = string | { status: number } | { raw: string };

export interface FakeJudge {
  url: string;
  /** Requests received, in order. */
  requests: FakeJudgeRequest[];
  close(): Promise<void>;
}

/** Query, response A and response B of a dialogue or summarization comparison prompt. */
export function parseComparison(content: string): { query: string; a: string; b: string } {
  const m =
    /Query: ([\s\S]*?)\n\nResponse A:\n([\s\S]*?)\n\nResponse B:\n([\s\S]*?)\n\nFIRST/.exec(content) ??
    /Post:\n([\s\S]*?)\n\nSummary A:\n([\s\S]*?)\n\nSummary B:\n([\s\S]*?)\n\nFIRST/.exec(content);
  if (!m) throw new Error(`unexpected judge prompt: ${content}`);
  return { query: m[1], a: m[2], b: m[3] };
}

/** The paper's answer format choosing `x`. */
export const choose = (x: string): string => `Comparison: Response ${x} is better.\nMore helpful: ${x}`;

export async function startFakeJudge(answer: (r: FakeJudgeRequest) => FakeJudgeReply): Promise<FakeJudge> {
  const requests: FakeJudgeRequest[] = [];
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString('utf8')));
    req.on('end', () => {
      const content = (JSON.parse(raw) as { messages: { content: string }[] }).messages[0].content;
      const r = { ...parseComparison(content), content };
      requests.push(r);
      const reply = answer(r);
      if (typeof reply !== 'string' && 'raw' in reply) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(reply.raw);
        return;
      }
      if (typeof reply !== 'string') {
        res.writeHead(reply.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `fake error ${reply.status}` } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: reply } }] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
