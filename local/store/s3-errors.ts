/**
 * An S3 error as the service answers it: an HTTP status and an `<Error><Code>…` document whose code the SDKs and the
 * AWS CLI turn into their exception names (NoSuchKey, NoSuchBucket, …). Extra fields (Key, BucketName, …) go into
 * the document as S3 puts them there, and `headers` go beside it (the Content-Range of an InvalidRange).
 */
export class S3Error extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly fields: Record<string, string> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = code;
  }
}

export const noSuchBucket = (bucket: string) =>
  new S3Error('NoSuchBucket', 404, 'The specified bucket does not exist', { BucketName: bucket });
export const noSuchKey = (key: string) =>
  new S3Error('NoSuchKey', 404, 'The specified key does not exist.', { Key: key });
export const noSuchVersion = (key: string, versionId: string) =>
  new S3Error('NoSuchVersion', 404, 'The specified version does not exist.', { Key: key, VersionId: versionId });
export const noSuchUpload = (uploadId: string) =>
  new S3Error(
    'NoSuchUpload',
    404,
    'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    { UploadId: uploadId },
  );
export const incompleteBody = () =>
  new S3Error(
    'IncompleteBody',
    400,
    'You did not provide the number of bytes specified by the Content-Length HTTP header',
  );
/** A method S3 does not serve on this resource (SERVICE, BUCKET or OBJECT, when the request was parsed). */
export const methodNotAllowed = (method: string, resourceType?: 'SERVICE' | 'BUCKET' | 'OBJECT') =>
  new S3Error('MethodNotAllowed', 405, 'The specified method is not allowed against this resource.', {
    Method: method,
    ...(resourceType ? { ResourceType: resourceType } : {}),
  });
export const invalidArgument = (message: string, name?: string, value?: string) =>
  new S3Error('InvalidArgument', 400, message, name ? { ArgumentName: name, ArgumentValue: value ?? '' } : {});
export const malformedXml = () =>
  new S3Error(
    'MalformedXML',
    400,
    'The XML you provided was not well-formed or did not validate against our published schema',
  );
export const preconditionFailed = (condition: string) =>
  new S3Error('PreconditionFailed', 412, 'At least one of the pre-conditions you specified did not hold', {
    Condition: condition,
  });
export const notImplemented = (what: string) =>
  new S3Error(
    'NotImplemented',
    501,
    `A header or query you provided implies functionality that is not implemented: ${what}`,
  );
/**
 * A header S3 does not honour here (Transfer-Encoding without a decoded length, an Expect other than 100-continue,
 * an append's x-amz-write-offset-bytes).
 */
export const headerNotImplemented = (header: string) =>
  new S3Error('NotImplemented', 501, 'A header you provided implies functionality that is not implemented', {
    Header: header,
  });
