import ts from 'typescript';

/** A node that declares a function body the graph can hold. */
export type FunctionLikeNode =
  | ts.FunctionDeclaration
  | ts.MethodDeclaration
  | ts.ConstructorDeclaration
  | ts.GetAccessorDeclaration
  | ts.SetAccessorDeclaration
  | ts.FunctionExpression
  | ts.ArrowFunction;

export function isFunctionLike(node: ts.Node): node is FunctionLikeNode {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node) ||
    ts.isFunctionExpression(node) ||
    ts.isArrowFunction(node)
  );
}

/** Strips the wrappers that do not change which value an expression is: parentheses, casts, `!`, `satisfies`. */
export function skipOuterExpressions(expr: ts.Expression): ts.Expression {
  let current = expr;
  for (;;) {
    if (ts.isParenthesizedExpression(current) || ts.isAsExpression(current) || ts.isNonNullExpression(current) ||
      ts.isSatisfiesExpression(current) || ts.isTypeAssertionExpression(current)) {
      current = current.expression;
    } else {
      return current;
    }
  }
}

/** The node an expression hangs from once the value-preserving wrappers are skipped upwards. */
function skipOuterParents(node: ts.Node): ts.Node {
  let current = node.parent;
  while (current && (ts.isParenthesizedExpression(current) || ts.isAsExpression(current) || ts.isNonNullExpression(current) ||
    ts.isSatisfiesExpression(current) || ts.isTypeAssertionExpression(current))) {
    current = current.parent;
  }
  return current;
}

function propertyNameText(name: ts.PropertyName | ts.BindingName): string | undefined {
  if (ts.isIdentifier(name) || ts.isPrivateIdentifier(name)) return name.text;
  if (ts.isStringLiteral(name) || ts.isNumericLiteral(name) || ts.isNoSubstitutionTemplateLiteral(name)) return name.text;
  if (ts.isComputedPropertyName(name)) {
    const inner = skipOuterExpressions(name.expression);
    if (ts.isStringLiteralLike(inner) || ts.isNumericLiteral(inner)) return inner.text;
    return `[${inner.getText()}]`;
  }
  return undefined;
}

/** The name of a class as code sees it: its own, else the variable it is assigned to. */
export function className(cls: ts.ClassLikeDeclaration): string {
  if (cls.name) return cls.name.text;
  const holder = skipOuterParents(cls);
  if (holder && ts.isVariableDeclaration(holder) && ts.isIdentifier(holder.name)) return holder.name.text;
  return '<anonymous>';
}

/**
 * The shared function name, or `undefined` for a function expression that nothing names
 * (an inline callback). Methods are `Class.method`; an anonymous function takes the name of
 * the variable or property it is assigned to.
 */
export function contextualName(fn: FunctionLikeNode): string | undefined {
  if (ts.isFunctionDeclaration(fn)) return fn.name?.text ?? '<anonymous>';
  if (ts.isConstructorDeclaration(fn)) return `${className(fn.parent)}.constructor`;
  if (ts.isMethodDeclaration(fn) || ts.isGetAccessorDeclaration(fn) || ts.isSetAccessorDeclaration(fn)) {
    const own = propertyNameText(fn.name) ?? '<anonymous>';
    return ts.isClassLike(fn.parent) ? `${className(fn.parent)}.${own}` : own;
  }
  if (ts.isFunctionExpression(fn) && fn.name) return fn.name.text;
  const holder = skipOuterParents(fn);
  if (!holder) return undefined;
  if (ts.isVariableDeclaration(holder) && holder.initializer && ts.isIdentifier(holder.name)) return holder.name.text;
  if (ts.isPropertyAssignment(holder)) return propertyNameText(holder.name);
  if (ts.isPropertyDeclaration(holder)) {
    const own = propertyNameText(holder.name) ?? '<anonymous>';
    return ts.isClassLike(holder.parent) ? `${className(holder.parent)}.${own}` : own;
  }
  if (ts.isBinaryExpression(holder) && holder.operatorToken.kind === ts.SyntaxKind.EqualsToken) {
    const left = skipOuterExpressions(holder.left);
    if (ts.isIdentifier(left)) return left.text;
    if (ts.isPropertyAccessExpression(left)) {
      // `module.exports = function () {}` names nothing; `exports.run = ...` names `run`.
      if (left.name.text === 'exports' && ts.isIdentifier(left.expression) && left.expression.text === 'module') return '<anonymous>';
      return left.name.text;
    }
    return '<anonymous>';
  }
  if (ts.isExportAssignment(holder)) return '<anonymous>';
  return undefined;
}

/**
 * Declared parameters before the first one with a default or a rest parameter: what
 * `Function.prototype.length` reports at run time. A TypeScript `this` parameter is not a parameter.
 */
export function arityOf(fn: ts.SignatureDeclarationBase): number {
  let count = 0;
  for (const param of fn.parameters) {
    if (ts.isIdentifier(param.name) && param.name.text === 'this') continue;
    if (param.initializer || param.dotDotDotToken) break;
    count += 1;
  }
  return count;
}

/** 1-based line of the declaration: of its name where it has one, else of the function itself. */
export function declarationLine(fn: FunctionLikeNode, sf: ts.SourceFile): number {
  let anchor: ts.Node = fn;
  if ((ts.isFunctionDeclaration(fn) || ts.isMethodDeclaration(fn) || ts.isGetAccessorDeclaration(fn) ||
    ts.isSetAccessorDeclaration(fn) || ts.isFunctionExpression(fn)) && fn.name) {
    anchor = fn.name;
  } else if (!ts.isConstructorDeclaration(fn)) {
    const holder = skipOuterParents(fn);
    if (holder && (ts.isVariableDeclaration(holder) || ts.isPropertyAssignment(holder) || ts.isPropertyDeclaration(holder))) {
      anchor = holder.name;
    }
  }
  return sf.getLineAndCharacterOfPosition(anchor.getStart(sf)).line + 1;
}
