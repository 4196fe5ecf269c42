// Compiled against the packed `ecom-client` npm package and run with node by
// test_generated_clients.py: calls the stack through Envoy with gRPC-Web, as
// docs/clients.md shows, and prints what it saw as JSON.
import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";
import { base64decode } from "@protobuf-ts/runtime";
import { RpcError } from "@protobuf-ts/runtime-rpc";
import { AuthServiceClient } from "ecom-client/ecommerce/auth/v1/auth.client";
import { Role } from "ecom-client/ecommerce/auth/v1/auth";
import { ProductServiceClient } from "ecom-client/ecommerce/catalog/v1/catalog.client";
import { ListProductsRequest } from "ecom-client/ecommerce/catalog/v1/catalog";
import { Any } from "ecom-client/google/protobuf/any";
import { BadRequest } from "ecom-client/google/rpc/error_details";
import { Status } from "ecom-client/google/rpc/status";

// No @types/node here: only what the script reads.
declare const process: { env: Record<string, string | undefined>; exitCode?: number };

async function main(): Promise<void> {
  const { ECOM_URL, PRODUCT_ID, EMAIL } = process.env;
  const transport = new GrpcWebFetchTransport({ baseUrl: ECOM_URL! });
  const products = new ProductServiceClient(transport);
  const auth = new AuthServiceClient(transport);

  const { response: page } = await products.listProducts(
    ListProductsRequest.create({ pageSize: 5 }),
  );
  const { response: product } = await products.getProduct({ id: PRODUCT_ID! });
  const { response: session } = await auth.register({
    email: EMAIL!,
    password: "long enough pw",
    name: "Ts",
  });
  const { response: me } = await auth.getMe(
    {},
    { meta: { authorization: `Bearer ${session.accessToken}` } },
  );
  let bad = { code: "accepted", fields: [] as string[] };
  try {
    await auth.register({ email: "nope", password: "long enough pw", name: "Ts" });
  } catch (error) {
    if (!(error instanceof RpcError)) throw error;
    // The google.rpc.Status of the error, with its details (field violations here).
    const status = Status.fromBinary(base64decode(String(error.meta["grpc-status-details-bin"])));
    const violations = status.details
      .filter((detail) => Any.contains(detail, BadRequest))
      .flatMap((detail) => Any.unpack(detail, BadRequest).fieldViolations);
    bad = { code: error.code, fields: violations.map((v) => v.field) };
  }
  console.log(
    JSON.stringify({
      listed: page.products.length,
      // int64 arrives as bigint, which JSON cannot hold.
      product: { sku: product.sku, price_cents: product.priceCents.toString() },
      me: me.user?.email,
      role: Role[me.user?.role ?? Role.UNSPECIFIED],
      bad_register: bad,
    }),
  );
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
