'use strict';
// A small client for Odin's WebSocket protocol (docs/protocol.md): one connection, requests multiplexed by `id`.
//
//   const { OdinClient } = require('./client');
//   const odin = await OdinClient.connect('ws://127.0.0.1:30000', { token });
//   const runs = await odin.request('STATUS', '');                        // one-shot: the OK reply's response
//   await odin.stream('WATCH', { run: id }, (event) => console.log(event)); // resolves at END with its response
//   odin.close();

const WebSocket = require('ws');

class OdinError extends Error {
  // An ERROR reply: `code` is the stable error code (not_found, invalid_pipeline, unauthorized, ...).
  constructor(message, code = 'internal', details = undefined) {
    super(message);
    this.name = 'OdinError';
    this.code = code;
    this.details = details;
  }

  static fromReply(reply) {
    const error = reply.error || {};
    return new OdinError(error.message || String(reply.response), error.code || 'internal', error.details);
  }
}

class OdinClient {
  constructor(ws) {
    this.ws = ws;
    this.nextId = 1;
    this.pending = new Map(); // id -> {onReply, onClose}
    ws.on('message', (data) => this._dispatch(data));
    ws.on('close', (code, reason) => {
      const error = new OdinError(`connection closed (${code}${reason.length ? `: ${reason}` : ''})`, 'unavailable');
      for (const { onClose } of this.pending.values()) onClose(error);
      this.pending.clear();
    });
    ws.on('error', () => {}); // a 'close' always follows; pending requests are failed there
  }

  // Connect to `url` (ws://host:port); the token, if any, goes in `Authorization: Bearer`.
  static connect(url, { token } = {}) {
    return new Promise((resolve, reject) => {
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      const ws = new WebSocket(url, { headers, maxPayload: 0 });
      ws.once('open', () => resolve(new OdinClient(ws)));
      ws.once('unexpected-response', (_req, res) => {
        const code = res.statusCode === 401 ? 'unauthorized' : 'unavailable';
        reject(new OdinError(`the server refused the connection: HTTP ${res.statusCode}`, code));
        ws.terminate();
      });
      ws.once('error', (err) => reject(new OdinError(`cannot connect to ${url}: ${err.message}`, 'unavailable')));
    });
  }

  _dispatch(data) {
    let reply;
    try {
      reply = JSON.parse(data.toString());
    } catch {
      return; // not JSON: nothing to correlate
    }
    const handler = reply && this.pending.get(reply.id);
    if (handler) handler.onReply(reply);
  }

  _send(command, payload, onReply, onClose) {
    const id = this.nextId++;
    if (this.ws.readyState !== WebSocket.OPEN) {
      onClose(new OdinError('connection is not open', 'unavailable'));
      return id;
    }
    this.pending.set(id, { onReply, onClose });
    this.ws.send(JSON.stringify({ command, request: payload, id }));
    return id;
  }

  // A one-shot command: a promise of the OK reply's response (rejected with an OdinError on ERROR).
  request(command, payload = null) {
    return new Promise((resolve, reject) => {
      const id = this._send(
        command,
        payload,
        (reply) => {
          this.pending.delete(id);
          if (reply.status === 'ERROR') reject(OdinError.fromReply(reply));
          else resolve(reply.response);
        },
        reject,
      );
    });
  }

  // A stream (START, WATCH, LOGS): `onItem(response)` for every OK; a promise resolved at END with END's
  // response, rejected on ERROR or a dropped connection. `stream.id` (via `onStart`) can be given to CANCEL.
  stream(command, payload, onItem, { onStart } = {}) {
    return new Promise((resolve, reject) => {
      const id = this._send(
        command,
        payload,
        (reply) => {
          if (reply.status === 'OK') {
            try {
              onItem(reply.response);
            } catch (err) {
              this.pending.delete(id);
              this.cancel(id).catch(() => {});
              reject(err);
            }
            return;
          }
          this.pending.delete(id);
          if (reply.status === 'END') resolve(reply.response);
          else reject(OdinError.fromReply(reply));
        },
        reject,
      );
      if (onStart) onStart(id);
    });
  }

  // End the stream started by the request with this id (it gets its END).
  cancel(id) {
    return this.request('CANCEL', id);
  }

  close() {
    this.ws.close(1000);
  }
}

module.exports = { OdinClient, OdinError };
