import { writerHost } from '../../functions/shared/writers.ts';

/**
 * A host tag that is not this process's (functions/shared/writers.ts): what a writer in another pid namespace (a
 * container sharing the data folder, or this container before its restart) names beside its pid.
 */
export const anotherHost = () => (writerHost() === '00000000' ? '11111111' : '00000000');
