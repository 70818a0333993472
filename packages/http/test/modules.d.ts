// The npm aliases of the previous majors, typed as the current ones: the tests only use the API both share.
declare module 'express4' {
  import express from 'express';
  export default express;
}
declare module 'koa2' {
  import Koa from 'koa';
  export default Koa;
}
