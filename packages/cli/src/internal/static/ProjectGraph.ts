import path from 'node:path';
import { existsSync } from 'node:fs';
import ts from 'typescript';
import { collectSourceFiles, moduleOf, relativeFile } from './project-files.js';
import {
  arityOf, className, contextualName, declarationLine, isFunctionLike, skipOuterExpressions,
  type FunctionLikeNode,
} from './function-naming.js';
import type { EntryPointType, LocatedFunction } from '../formats.js';

/** One function of the project, as a node of the call graph. */
export interface FunctionNode {
  index: number;
  node: FunctionLikeNode;
  key: LocatedFunction;
  visibility: 'public' | 'private';
}

/** Where work enters the program, found syntactically and resolved through the checker. */
export interface EntryPointFinding {
  type: EntryPointType;
  fn: FunctionLikeNode;
  metadata: Record<string, unknown>;
  /** Source order, for a stable output. */
  order: [number, number];
}

const HTTP_METHODS = new Map([
  ['get', 'GET'], ['post', 'POST'], ['put', 'PUT'], ['patch', 'PATCH'], ['delete', 'DELETE'], ['del', 'DELETE'],
  ['head', 'HEAD'], ['options', 'OPTIONS'], ['all', 'ALL'],
]);
const REDIS_MESSAGE_EVENTS = new Set(['message', 'pmessage', 'messageBuffer', 'pmessageBuffer']);
const REDIS_MODULES = new Set(['ioredis', 'redis', '@redis/client']);
const KOA_ROUTER_MODULES = new Set(['@koa/router', 'koa-router']);
const MAX_RESOLVE_DEPTH = 8;

/**
 * The call graph of one project: its functions, the caller -> callee pairs the type checker can
 * resolve, and its entry points. Lookups by a computed key (`handlers[op](...)`) are deliberately
 * left unresolved: they are the dependencies only a dynamic trace shows.
 */
export class ProjectGraph {
  readonly root: string;
  readonly functions: FunctionNode[] = [];
  readonly edges = new Map<FunctionNode, Set<FunctionNode>>();
  readonly entryPoints: EntryPointFinding[] = [];

  readonly #program: ts.Program;
  readonly #checker: ts.TypeChecker;
  readonly #files: ts.SourceFile[];
  readonly #fileIndex = new Map<ts.SourceFile, number>();
  readonly #byNode = new Map<ts.Node, FunctionNode>();
  /** Inline callbacks that are entry handlers and so must stand as functions of their own. */
  readonly #forced = new Set<ts.Node>();

  constructor(root: string, options: { ignore?: readonly string[] } = {}) {
    this.root = path.resolve(root);
    const fileNames = collectSourceFiles(this.root, options.ignore);
    this.#program = ts.createProgram({ rootNames: fileNames, options: compilerOptionsFor(this.root) });
    this.#checker = this.#program.getTypeChecker();
    const wanted = new Set(fileNames.map((f) => path.resolve(f)));
    this.#files = this.#program.getSourceFiles().filter((sf) => wanted.has(path.resolve(sf.fileName)));
    this.#files.forEach((sf, i) => this.#fileIndex.set(sf, i));
    for (const sf of this.#files) this.#findEntryPoints(sf);
    for (const sf of this.#files) this.#registerFunctions(sf);
    this.#markPublic();
    for (const sf of this.#files) this.#collectCalls(sf);
  }

  /** The graph node of a function-like declaration, when it belongs to the project. */
  nodeOf(fn: ts.Node): FunctionNode | undefined {
    return this.#byNode.get(fn);
  }

  // ---- entry points -------------------------------------------------------------------------

  #findEntryPoints(sf: ts.SourceFile): void {
    const importsRedis = this.#importedModules(sf).some((m) => REDIS_MODULES.has(m));
    let readsArgv = false;
    const visit = (node: ts.Node, insideFunction: boolean): void => {
      if (ts.isPropertyAccessExpression(node) && node.name.text === 'argv' && ts.isIdentifier(node.expression) && node.expression.text === 'process') {
        readsArgv = true;
      }
      if (ts.isCallExpression(node)) this.#entryFromCall(sf, node, insideFunction, importsRedis);
      const nested = insideFunction || isFunctionLike(node);
      ts.forEachChild(node, (child) => visit(child, nested));
    };
    visit(sf, false);
    if (readsArgv) this.#findArgvMains(sf);
  }

  #entryFromCall(sf: ts.SourceFile, call: ts.CallExpression, insideFunction: boolean, importsRedis: boolean): void {
    const callee = skipOuterExpressions(call.expression);
    const args = call.arguments;
    const add = (type: EntryPointType, handler: ts.Expression | undefined, metadata: Record<string, unknown>): void => {
      const fn = handler && this.#handlerFunction(handler);
      if (!fn) return;
      if (!fn.getSourceFile() || !this.#fileIndex.has(fn.getSourceFile())) return;
      if (ts.isFunctionExpression(fn) || ts.isArrowFunction(fn)) this.#forced.add(fn);
      this.entryPoints.push({ type, fn, metadata, order: [this.#fileIndex.get(sf) ?? 0, call.getStart(sf)] });
    };

    if (ts.isIdentifier(callee)) {
      // Timers: a repeating timer anywhere, a one-shot timer when it is module start-up work.
      const name = callee.text;
      if ((name === 'setInterval' || (!insideFunction && (name === 'setTimeout' || name === 'setImmediate'))) && args.length > 0) {
        const metadata: Record<string, unknown> = { timer: name };
        const delay = args[1] && numericValue(args[1]);
        if (delay !== undefined) metadata.interval_ms = delay;
        add('timer', args[0], metadata);
      }
      return;
    }
    if (!ts.isPropertyAccessExpression(callee)) return;
    const method = callee.name.text;
    const receiver = skipOuterExpressions(callee.expression);

    const httpMethod = HTTP_METHODS.get(method);
    if (httpMethod && args.length >= 2) {
      // `router.get('/path', ...handlers)` and Koa's named form `router.get('name', '/path', handler)`.
      const pathIndex = [0, 1].find((i) => args[i] && isRoutePath(args[i]!));
      if (pathIndex !== undefined && args.length > pathIndex + 1) {
        const metadata: Record<string, unknown> = { method: httpMethod, route: stringValue(args[pathIndex]!) };
        const framework = this.#frameworkOf(receiver);
        if (framework) metadata.framework = framework;
        add('http', args[args.length - 1], metadata);
        return;
      }
    }
    if (httpMethod && args.length >= 1 && ts.isCallExpression(receiver)) {
      // Express's `app.route('/path').get(handler)`.
      const routeCallee = skipOuterExpressions(receiver.expression);
      if (ts.isPropertyAccessExpression(routeCallee) && routeCallee.name.text === 'route' && receiver.arguments[0] && isRoutePath(receiver.arguments[0])) {
        add('http', args[args.length - 1], { method: httpMethod, route: stringValue(receiver.arguments[0]), framework: 'express' });
        return;
      }
    }
    if (method === 'use' && args.length === 1 && this.#isKoaApplication(receiver)) {
      add('http', args[0], { method: 'ALL', route: '*', framework: 'koa' });
      return;
    }
    if (method === 'consume' && args.length >= 2) {
      add('amqp', args[1], { queue: this.#describeValue(args[0]!) });
      return;
    }
    if (method === 'run' && args[0] && ts.isObjectLiteralExpression(args[0])) {
      const topics = this.#kafkaTopics(sf, receiver);
      for (const prop of args[0].properties) {
        const propName = prop.name && (ts.isIdentifier(prop.name) || ts.isStringLiteral(prop.name)) ? prop.name.text : undefined;
        if (propName !== 'eachMessage' && propName !== 'eachBatch') continue;
        const handler = ts.isPropertyAssignment(prop) ? prop.initializer
          : ts.isShorthandPropertyAssignment(prop) ? prop.name
          : ts.isMethodDeclaration(prop) ? prop : undefined;
        const metadata: Record<string, unknown> = { handler: propName };
        if (topics.length > 0) metadata.topics = topics;
        if (handler && ts.isMethodDeclaration(handler)) {
          this.entryPoints.push({ type: 'kafka', fn: handler, metadata, order: [this.#fileIndex.get(sf) ?? 0, handler.getStart(sf)] });
        } else {
          add('kafka', handler as ts.Expression | undefined, metadata);
        }
      }
      return;
    }
    if ((method === 'on' || method === 'once' || method === 'addListener') && args.length >= 2 && ts.isStringLiteralLike(args[0]!) &&
      REDIS_MESSAGE_EVENTS.has(args[0].text) && !(ts.isIdentifier(receiver) && receiver.text === 'process')) {
      if (importsRedis || this.#originModule(receiver) !== undefined) {
        const metadata: Record<string, unknown> = { event: args[0].text };
        const channels = this.#receiverCallArguments(sf, receiver, new Set(['subscribe', 'psubscribe']));
        if (channels.length > 0) metadata.channels = channels;
        add('redis', args[1], metadata);
      }
      return;
    }
    if ((method === 'subscribe' || method === 'pSubscribe') && args.length >= 2 && importsRedis) {
      // node-redis v4 passes the listener to subscribe itself.
      const last = args[args.length - 1]!;
      const fn = this.#handlerFunction(last);
      if (fn) add('redis', last, { event: method === 'subscribe' ? 'message' : 'pmessage', channels: [this.#describeValue(args[0]!)] });
      return;
    }
    if (method === 'action' && args.length >= 1) {
      add('cli', args[0], { command: commandName(receiver) });
    }
  }

  /** A CLI program that reads `process.argv`: the project functions its top-level code calls. */
  #findArgvMains(sf: ts.SourceFile): void {
    const seen = new Set<ts.Node>();
    const visit = (node: ts.Node): void => {
      if (isFunctionLike(node) || ts.isClassLike(node)) return;
      if (ts.isCallExpression(node)) {
        const fn = this.#resolveCallee(node.expression);
        if (fn && !seen.has(fn) && this.#fileIndex.has(fn.getSourceFile())) {
          seen.add(fn);
          this.entryPoints.push({ type: 'cli', fn, metadata: { argv: true }, order: [this.#fileIndex.get(sf) ?? 0, node.getStart(sf)] });
        }
      }
      ts.forEachChild(node, visit);
    };
    for (const statement of sf.statements) visit(statement);
  }

  /** The function an entry handler argument stands for: inline, named, or wrapped in a helper call. */
  #handlerFunction(expr: ts.Expression): FunctionLikeNode | undefined {
    const value = skipOuterExpressions(expr);
    if (ts.isFunctionExpression(value) || ts.isArrowFunction(value)) return value;
    if (ts.isIdentifier(value) || ts.isPropertyAccessExpression(value)) return this.#resolveValue(value, 0);
    if (ts.isCallExpression(value)) {
      // `asyncHandler(async (req, res) => ...)`: the wrapped function is the handler.
      for (const arg of value.arguments) {
        const inner = this.#handlerFunction(arg);
        if (inner) return inner;
      }
    }
    if (ts.isArrayLiteralExpression(value) && value.elements.length > 0) {
      return this.#handlerFunction(value.elements[value.elements.length - 1]!);
    }
    return undefined;
  }

  #importedModules(sf: ts.SourceFile): string[] {
    const found: string[] = [];
    for (const statement of sf.statements) {
      if (ts.isImportDeclaration(statement) && ts.isStringLiteral(statement.moduleSpecifier)) found.push(statement.moduleSpecifier.text);
    }
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'require' &&
        node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
        found.push(node.arguments[0].text);
      }
      ts.forEachChild(node, visit);
    };
    if (sf.fileName.match(/\.c?js$/)) visit(sf);
    return found;
  }

  /** The module an expression's value was created from: `express()`, `new Koa()`, `new Redis()`, `.duplicate()`. */
  #originModule(expr: ts.Expression, depth = 0): string | undefined {
    if (depth > MAX_RESOLVE_DEPTH) return undefined;
    const value = skipOuterExpressions(expr);
    if (ts.isIdentifier(value)) {
      const symbol = this.#checker.getSymbolAtLocation(value);
      const decl = symbol?.declarations?.[0];
      if (!decl) return undefined;
      const imported = importSpecifierOf(decl);
      if (imported) return imported;
      if (ts.isVariableDeclaration(decl) && decl.initializer) return this.#originModule(decl.initializer, depth + 1);
      return undefined;
    }
    if (ts.isNewExpression(value) || ts.isCallExpression(value)) {
      const callee = skipOuterExpressions(value.expression);
      if (ts.isIdentifier(callee) && callee.text === 'require' && value.arguments?.[0] && ts.isStringLiteral(value.arguments[0])) {
        return value.arguments[0].text;
      }
      if (ts.isPropertyAccessExpression(callee)) return this.#originModule(callee.expression, depth + 1);
      return this.#originModule(callee, depth + 1);
    }
    if (ts.isPropertyAccessExpression(value)) return this.#originModule(value.expression, depth + 1);
    return undefined;
  }

  /** A literal's value, a constant's literal value, or the source text of anything computed. */
  #describeValue(expr: ts.Expression, depth = 0): string {
    const value = skipOuterExpressions(expr);
    if (ts.isStringLiteralLike(value) || ts.isNumericLiteral(value)) return value.text;
    if (ts.isIdentifier(value) && depth < MAX_RESOLVE_DEPTH) {
      const decl = this.#checker.getSymbolAtLocation(value)?.declarations?.[0];
      if (decl && ts.isVariableDeclaration(decl) && decl.initializer && ts.getCombinedNodeFlags(decl) & ts.NodeFlags.Const) {
        return this.#describeValue(decl.initializer, depth + 1);
      }
    }
    return value.getText();
  }

  #frameworkOf(receiver: ts.Expression): string | undefined {
    const origin = this.#originModule(receiver);
    if (origin === 'express') return 'express';
    if (origin === 'koa' || (origin && KOA_ROUTER_MODULES.has(origin))) return 'koa';
    return undefined;
  }

  #isKoaApplication(receiver: ts.Expression): boolean {
    const value = skipOuterExpressions(receiver);
    if (!ts.isIdentifier(value)) return false;
    const decl = this.#checker.getSymbolAtLocation(value)?.declarations?.[0];
    if (!decl || !ts.isVariableDeclaration(decl) || !decl.initializer) return false;
    const init = skipOuterExpressions(decl.initializer);
    return ts.isNewExpression(init) && this.#originModule(init) === 'koa';
  }

  /** Topics a kafkajs consumer subscribes to in the same file: `consumer.subscribe({ topic | topics })`. */
  #kafkaTopics(sf: ts.SourceFile, receiver: ts.Expression): string[] {
    const topics: string[] = [];
    for (const call of this.#callsOnSameReceiver(sf, receiver, new Set(['subscribe']))) {
      const options = call.arguments[0] && skipOuterExpressions(call.arguments[0]);
      if (!options || !ts.isObjectLiteralExpression(options)) continue;
      for (const prop of options.properties) {
        if (!ts.isPropertyAssignment(prop) || !ts.isIdentifier(prop.name)) continue;
        const init = skipOuterExpressions(prop.initializer);
        if (prop.name.text === 'topic') topics.push(this.#describeValue(init));
        if (prop.name.text === 'topics' && ts.isArrayLiteralExpression(init)) topics.push(...init.elements.map((e) => this.#describeValue(e)));
      }
    }
    return topics;
  }

  #receiverCallArguments(sf: ts.SourceFile, receiver: ts.Expression, methods: Set<string>): string[] {
    const values: string[] = [];
    for (const call of this.#callsOnSameReceiver(sf, receiver, methods)) {
      for (const arg of call.arguments) {
        if (ts.isFunctionExpression(arg) || ts.isArrowFunction(arg)) continue;
        values.push(this.#describeValue(arg));
      }
    }
    return values;
  }

  #callsOnSameReceiver(sf: ts.SourceFile, receiver: ts.Expression, methods: Set<string>): ts.CallExpression[] {
    const target = ts.isIdentifier(receiver) ? this.#checker.getSymbolAtLocation(receiver) : undefined;
    const text = receiver.getText(sf);
    const calls: ts.CallExpression[] = [];
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node)) {
        const callee = skipOuterExpressions(node.expression);
        if (ts.isPropertyAccessExpression(callee) && methods.has(callee.name.text)) {
          const other = skipOuterExpressions(callee.expression);
          const same = target && ts.isIdentifier(other) ? this.#checker.getSymbolAtLocation(other) === target : other.getText(sf) === text;
          if (same) calls.push(node);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
    return calls;
  }

  // ---- functions ----------------------------------------------------------------------------

  #registerFunctions(sf: ts.SourceFile): void {
    const visit = (node: ts.Node, owner: FunctionNode | undefined): void => {
      let next = owner;
      if (isFunctionLike(node) && hasBody(node)) {
        const name = contextualName(node);
        // An unnamed inline callback belongs to the function around it, unless it is an entry handler
        // or stands at module level.
        if (name !== undefined || this.#forced.has(node) || owner === undefined) {
          next = this.#addFunction(sf, node, name ?? '<anonymous>');
        }
      }
      ts.forEachChild(node, (child) => visit(child, next));
    };
    visit(sf, undefined);
  }

  #addFunction(sf: ts.SourceFile, node: FunctionLikeNode, name: string): FunctionNode {
    const fn: FunctionNode = {
      index: this.functions.length,
      node,
      key: {
        module: moduleOf(this.root, sf.fileName),
        function: name,
        arity: arityOf(node),
        file: relativeFile(this.root, sf.fileName),
        line: declarationLine(node, sf),
      },
      visibility: 'private',
    };
    this.functions.push(fn);
    this.#byNode.set(node, fn);
    return fn;
  }

  /** Functions reachable from a module's exports, and public members of exported classes, are public. */
  #markPublic(): void {
    const mark = (node: ts.Node | undefined): void => {
      if (!node) return;
      const fn = this.#byNode.get(node);
      if (fn) {
        fn.visibility = 'public';
        return;
      }
      if (ts.isClassLike(node)) {
        for (const member of node.members) {
          const hidden = ts.getCombinedModifierFlags(member) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected);
          const privateName = member.name !== undefined && ts.isPrivateIdentifier(member.name);
          if (hidden || privateName) continue;
          if (isFunctionLike(member)) mark(member);
          else if (ts.isPropertyDeclaration(member) && member.initializer) mark(skipOuterExpressions(member.initializer));
        }
      } else if (ts.isObjectLiteralExpression(node)) {
        for (const prop of node.properties) {
          if (ts.isMethodDeclaration(prop)) mark(prop);
          else if (ts.isPropertyAssignment(prop)) mark(this.#resolveValue(prop.initializer, 0) ?? skipOuterExpressions(prop.initializer));
          else if (ts.isShorthandPropertyAssignment(prop)) mark(this.#resolveValue(prop.name, 0));
        }
      }
    };
    for (const sf of this.#files) {
      const moduleSymbol = this.#checker.getSymbolAtLocation(sf);
      if (!moduleSymbol) continue;
      for (const exported of this.#checker.getExportsOfModule(moduleSymbol)) {
        const symbol = exported.flags & ts.SymbolFlags.Alias ? this.#checker.getAliasedSymbol(exported) : exported;
        for (const decl of symbol.declarations ?? []) {
          if (ts.isClassLike(decl)) mark(decl);
          else if (ts.isVariableDeclaration(decl) && decl.initializer) {
            const init = skipOuterExpressions(decl.initializer);
            mark(ts.isObjectLiteralExpression(init) || ts.isClassExpression(init) ? init : this.#functionOfDeclaration(decl, 0));
          } else mark(this.#functionOfDeclaration(decl, 0));
        }
      }
    }
  }

  // ---- calls --------------------------------------------------------------------------------

  #collectCalls(sf: ts.SourceFile): void {
    const visit = (node: ts.Node, owner: FunctionNode | undefined): void => {
      const own = isFunctionLike(node) ? this.#byNode.get(node) : undefined;
      const current = own ?? owner;
      if (current && (ts.isCallExpression(node) || ts.isNewExpression(node))) {
        const target = this.#calleeOf(node);
        const callee = target && this.#byNode.get(target);
        if (callee) {
          let set = this.edges.get(current);
          if (!set) this.edges.set(current, (set = new Set()));
          set.add(callee);
        }
      }
      ts.forEachChild(node, (child) => visit(child, current));
    };
    visit(sf, undefined);
  }

  #calleeOf(call: ts.CallExpression | ts.NewExpression): FunctionLikeNode | undefined {
    if (ts.isNewExpression(call)) {
      const cls = this.#classOf(call.expression);
      return cls && constructorOf(cls);
    }
    const callee = skipOuterExpressions(call.expression);
    if (callee.kind === ts.SyntaxKind.SuperKeyword) {
      const decl = this.#checker.getResolvedSignature(call)?.declaration;
      return decl && ts.isConstructorDeclaration(decl) && decl.body ? decl : undefined;
    }
    if (ts.isPropertyAccessExpression(callee) && (callee.name.text === 'call' || callee.name.text === 'apply')) {
      // `fn.call(thisArg, ...)` runs `fn` itself.
      const direct = this.#resolveCallee(callee);
      if (direct) return direct;
      return this.#resolveCallee(callee.expression);
    }
    return this.#resolveCallee(callee);
  }

  /**
   * The project function a callee expression names, through identifiers, property access on known
   * types, imports and re-exports. An element access (`table[key]`) is never followed.
   */
  #resolveCallee(expr: ts.Expression): FunctionLikeNode | undefined {
    const callee = skipOuterExpressions(expr);
    if (ts.isFunctionExpression(callee) || ts.isArrowFunction(callee)) return callee;
    if (!ts.isIdentifier(callee) && !ts.isPropertyAccessExpression(callee)) return undefined;
    return this.#resolveValue(callee, 0);
  }

  #resolveValue(expr: ts.Expression, depth: number): FunctionLikeNode | undefined {
    if (depth > MAX_RESOLVE_DEPTH) return undefined;
    const value = skipOuterExpressions(expr);
    if (ts.isFunctionExpression(value) || ts.isArrowFunction(value)) return value;
    let nameNode: ts.Node;
    if (ts.isIdentifier(value)) nameNode = value;
    else if (ts.isPropertyAccessExpression(value)) nameNode = value.name;
    else return undefined;
    const symbol = this.#checker.getSymbolAtLocation(nameNode);
    return symbol && this.#functionOfSymbol(symbol, depth + 1);
  }

  #functionOfSymbol(symbol: ts.Symbol, depth: number): FunctionLikeNode | undefined {
    if (depth > MAX_RESOLVE_DEPTH) return undefined;
    let target = symbol;
    if (target.flags & ts.SymbolFlags.Alias) {
      try {
        target = this.#checker.getAliasedSymbol(target);
      } catch {
        return undefined;
      }
    }
    const decls = target.declarations ?? [];
    // Overloads: the implementation is the declaration with a body.
    const ordered = [...decls].sort((a, b) => Number(hasBody(b)) - Number(hasBody(a)));
    for (const decl of ordered) {
      const fn = this.#functionOfDeclaration(decl, depth);
      if (fn) return fn;
    }
    return undefined;
  }

  #functionOfDeclaration(decl: ts.Node, depth: number): FunctionLikeNode | undefined {
    if (depth > MAX_RESOLVE_DEPTH) return undefined;
    if (isFunctionLike(decl)) return hasBody(decl) ? decl : undefined;
    if ((ts.isVariableDeclaration(decl) || ts.isPropertyDeclaration(decl) || ts.isPropertyAssignment(decl)) && decl.initializer) {
      const init = skipOuterExpressions(decl.initializer);
      if (ts.isFunctionExpression(init) || ts.isArrowFunction(init)) return init;
      // A value copied from another name (`{ create: createOrder }`, `const run = main`) is that function.
      if (ts.isIdentifier(init) || ts.isPropertyAccessExpression(init)) return this.#resolveValue(init, depth + 1);
      return undefined;
    }
    if (ts.isShorthandPropertyAssignment(decl)) {
      const valueSymbol = this.#checker.getShorthandAssignmentValueSymbol(decl);
      return valueSymbol && this.#functionOfSymbol(valueSymbol, depth + 1);
    }
    if (ts.isBinaryExpression(decl)) return this.#resolveAssigned(decl.right, depth);
    if ((ts.isPropertyAccessExpression(decl) || ts.isElementAccessExpression(decl) || ts.isIdentifier(decl)) &&
      decl.parent && ts.isBinaryExpression(decl.parent) && decl.parent.left === decl) {
      // CommonJS: `exports.run = function () {}` declares `run` through the assignment.
      return this.#resolveAssigned(decl.parent.right, depth);
    }
    if (ts.isExportAssignment(decl)) return this.#resolveAssigned(decl.expression, depth);
    return undefined;
  }

  #resolveAssigned(expr: ts.Expression, depth: number): FunctionLikeNode | undefined {
    const value = skipOuterExpressions(expr);
    if (ts.isFunctionExpression(value) || ts.isArrowFunction(value)) return value;
    if (ts.isIdentifier(value) || ts.isPropertyAccessExpression(value)) return this.#resolveValue(value, depth + 1);
    return undefined;
  }

  #classOf(expr: ts.Expression): ts.ClassLikeDeclaration | undefined {
    const value = skipOuterExpressions(expr);
    if (ts.isClassExpression(value)) return value;
    if (!ts.isIdentifier(value) && !ts.isPropertyAccessExpression(value)) return undefined;
    let symbol = this.#checker.getSymbolAtLocation(ts.isIdentifier(value) ? value : value.name);
    if (symbol && symbol.flags & ts.SymbolFlags.Alias) symbol = this.#checker.getAliasedSymbol(symbol);
    for (const decl of symbol?.declarations ?? []) {
      if (ts.isClassLike(decl)) return decl;
      if (ts.isVariableDeclaration(decl) && decl.initializer && ts.isClassExpression(skipOuterExpressions(decl.initializer))) {
        return skipOuterExpressions(decl.initializer) as ts.ClassExpression;
      }
    }
    return undefined;
  }

  /** The shared name of a class, for callers that report on classes. */
  static classNameOf(cls: ts.ClassLikeDeclaration): string {
    return className(cls);
  }
}

function hasBody(node: ts.Node): boolean {
  return isFunctionLike(node) && node.body !== undefined;
}

function constructorOf(cls: ts.ClassLikeDeclaration): FunctionLikeNode | undefined {
  for (const member of cls.members) {
    if (ts.isConstructorDeclaration(member) && member.body) return member;
  }
  return undefined;
}

function importSpecifierOf(decl: ts.Node): string | undefined {
  let current: ts.Node | undefined = decl;
  while (current && !ts.isSourceFile(current)) {
    if (ts.isImportDeclaration(current) && ts.isStringLiteral(current.moduleSpecifier)) return current.moduleSpecifier.text;
    if (ts.isImportEqualsDeclaration(current)) {
      const ref = current.moduleReference;
      return ts.isExternalModuleReference(ref) && ts.isStringLiteral(ref.expression) ? ref.expression.text : undefined;
    }
    if (ts.isVariableDeclaration(current) || ts.isBinaryExpression(current)) break;
    current = current.parent;
  }
  if (current && ts.isVariableDeclaration(current) && current.initializer) {
    const init = skipOuterExpressions(current.initializer);
    if (ts.isCallExpression(init) && ts.isIdentifier(init.expression) && init.expression.text === 'require' &&
      init.arguments[0] && ts.isStringLiteral(init.arguments[0])) {
      return init.arguments[0].text;
    }
  }
  return undefined;
}

function isRoutePath(expr: ts.Expression): boolean {
  const value = skipOuterExpressions(expr);
  if (ts.isStringLiteralLike(value)) return value.text.startsWith('/') || value.text === '*';
  if (ts.isRegularExpressionLiteral(value)) return true;
  return false;
}

function stringValue(expr: ts.Expression): string {
  const value = skipOuterExpressions(expr);
  return ts.isStringLiteralLike(value) ? value.text : value.getText();
}


function numericValue(expr: ts.Expression): number | undefined {
  const value = skipOuterExpressions(expr);
  return ts.isNumericLiteral(value) ? Number(value.text) : undefined;
}

/** The command a commander `.action()` belongs to: the nearest `.command('name ...')` up the chain. */
function commandName(receiver: ts.Expression): string {
  let current: ts.Expression = receiver;
  while (ts.isCallExpression(current) || ts.isPropertyAccessExpression(current)) {
    if (ts.isCallExpression(current)) {
      const callee = skipOuterExpressions(current.expression);
      if (ts.isPropertyAccessExpression(callee) && callee.name.text === 'command' && current.arguments[0] && ts.isStringLiteralLike(current.arguments[0])) {
        return current.arguments[0].text.split(/\s+/)[0] ?? '';
      }
      current = callee;
    } else {
      current = current.expression;
    }
  }
  return '<program>';
}

/**
 * Options for reading any project: JavaScript included, modules resolved the way bundlers and
 * Node both accept (`./x`, `./x.js` for `x.ts`), plus the project's own `paths` and JSX setting.
 */
function compilerOptionsFor(root: string): ts.CompilerOptions {
  const options: ts.CompilerOptions = {
    allowJs: true,
    checkJs: false,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    jsx: ts.JsxEmit.Preserve,
    skipLibCheck: true,
    resolveJsonModule: true,
    allowImportingTsExtensions: true,
    experimentalDecorators: true,
  };
  const configPath = path.join(root, 'tsconfig.json');
  if (existsSync(configPath)) {
    const parsed = ts.getParsedCommandLineOfConfigFile(configPath, {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: () => undefined,
    });
    const own = parsed?.options;
    if (own?.paths) options.paths = own.paths;
    if (own?.baseUrl) options.baseUrl = own.baseUrl;
    if (own?.jsx !== undefined) options.jsx = own.jsx;
  }
  return options;
}
